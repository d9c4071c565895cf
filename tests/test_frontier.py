import json

import pytest
from conftest import evaluated_pair, run_cli

from supremum.errors import UserError
from supremum.frontier import Variant, frontier, pareto
from supremum.frontier.pick import pick, violations
from supremum.store import Store


def v(name, acc, lat, size=10.0, data="d", split="dev", machine="cpu A"):
    return Variant(name, "full", data, split, machine, {"accuracy": acc},
                   {"latency_b1": lat, "size": size, "memory": 100.0, "params": 1000}, "run-" + name)


def test_pareto_matches_hand_computed_set():
    rows = [v("a", 0.90, 10), v("b", 0.88, 5), v("c", 0.87, 6), v("d", 0.91, 12), v("e", 0.88, 5.5),
            v("f", 0.80, 1), v("g", 0.91, 13), v("h", 0.90, 10)]
    # c: beaten by b (better and faster); e: by b (same accuracy, slower); g: by d; h ties a exactly
    assert [r.artifact for r in pareto(rows, "accuracy", "latency_b1")] == ["f", "b", "a", "h", "d"]
    assert [r.artifact for r in pareto(rows, "accuracy", "size")] == ["d", "g"]


def test_violations_are_relative_and_name_the_constraint():
    row = v("a", 0.85, 12.0, size=40.0)
    got = violations(row, {"max_latency_ms": 10.0, "max_size_mb": 50.0}, "accuracy", 0.9)
    assert set(got) == {"max_latency_ms", "min_accuracy"}
    assert got["max_latency_ms"] == pytest.approx(0.2)
    assert got["min_accuracy"] == pytest.approx(0.05 / 0.9)


def record_eval(store: Store, run_id: str, art: str, acc: float, lat: float, machine="cpu A", split="dev"):
    metrics = {"artifact": art, "lineage": "full", "data": "/data/reviews.csv", "split": split,
               "accuracy": acc, "size_on_disk_mb": 10.0, "machine": {"cpu": machine},
               "cost": {"latency_b1": {"with_tokenization": {"median_ms": lat}, "model_only": {"median_ms": lat}},
                        "peak_rss_mb": 100.0, "params": 1000}}
    store.start_run(run_id, "eval", "test", {}, {"cpu": machine}, parents=[art])
    store.finish_run(run_id, metrics, art, "/nowhere")


def test_frontier_never_mixes_machines_or_eval_sets():
    store = Store()
    record_eval(store, "r1", "fast", 0.85, 2.0)
    record_eval(store, "r2", "slow", 0.90, 8.0)
    record_eval(store, "r3", "worse", 0.84, 3.0)
    record_eval(store, "r4", "elsewhere", 0.99, 0.5, machine="cpu B")
    record_eval(store, "r5", "test-set", 0.99, 0.5, split="test")
    record_eval(store, "r6", "slow", 0.91, 7.0)  # a newer evaluation of the same artifact replaces r2
    res = frontier(store=store, split="dev", data="reviews.csv")
    assert res["group"]["machine"] == "cpu A"
    assert [x["artifact"] for x in res["frontier"]] == ["fast", "slow"]
    assert res["frontier"][1]["metrics"]["accuracy"] == 0.91
    assert [x["artifact"] for x in res["dominated"]] == ["worse"]
    reasons = {x["artifact"]: x["reason"] for x in res["not_comparable"]}
    assert "another machine" in reasons["elsewhere"] and "[test]" in reasons["test-set"]

    assert pick({"max_latency_ms": 5.0}, store=store, split="dev")["pick"]["artifact"] == "fast"
    assert pick({"max_latency_ms": 10.0}, store=store, split="dev")["pick"]["artifact"] == "slow"
    miss = pick({"max_latency_ms": 1.0}, min_metric=0.95, store=store, split="dev")
    assert miss["pick"] is None and set(miss["unmet_by_every_variant"]) == {"max_latency_ms", "min_accuracy"}
    assert miss["closest"][0]["artifact"] == "fast"
    with pytest.raises(UserError) as e:
        pick({"max_latency_ms": -5.0}, store=store)
    assert str(e.value) == ("pick limits: 'max_latency_ms': Input should be greater than 0 "
                            "(got -5.0; see `supremum pick --help`)")
    with pytest.raises(UserError, match="unknown cost"):
        frontier(cost="speed", store=store)
    with pytest.raises(UserError, match="no finished evaluation"):
        frontier(split="validation", store=store)


def test_frontier_and_pick_cli_end_to_end(csv_data, tmp_path):
    evaluated_pair(csv_data, tmp_path, "onnx-int8-dynamic")
    res = json.loads(run_cli("frontier", "--json", check=True).stdout)
    assert {x["lineage"] for x in res["frontier"] + res["dominated"]} == {"full", "full>onnx-int8-dynamic"}
    table = run_cli("frontier", "--cost", "size", check=True).stdout
    assert "Pareto frontier" in table and "full>onnx-int8-dynamic" in table
    ok = run_cli("pick", "--max-size-mb", "1000", check=True)
    assert ok.stdout.startswith("pick:")
    none = run_cli("pick", "--max-size-mb", "0.001")
    assert none.returncode == 1 and "max_size_mb" in none.stdout and "closest" in none.stdout
    bad = run_cli("frontier", "--metric", "meteor")
    assert bad.returncode == 2 and "unknown metric 'meteor'" in bad.stderr
    generated = json.loads(run_cli("frontier", "--metric", "bleu", "--json", check=True).stdout)
    assert not generated["frontier"]
    assert all(r["reason"] == "no bleu measured" for r in generated["not_comparable"])


def test_report_html_is_self_contained_and_md_lists_what_steps_bought(csv_data, tmp_path):
    art, _ = evaluated_pair(csv_data, tmp_path, "onnx-int8-dynamic")
    run_cli("sensitivity", str(art), "--schemes", "int8", check=True)
    out = run_cli("report", "--output", str(tmp_path / "r.html"), check=True).stdout.strip()
    page = (tmp_path / "r.html").read_text()
    # 3 Pareto plots + training curves + the sensitivity chart
    assert out.endswith("r.html") and page.count("<svg") == 5
    # nothing to fetch: no scripts, no external sources or links (SVG's own #fragment refs are fine)
    assert "<script" not in page and "src=" not in page and 'href="http' not in page
    assert "full&gt;onnx-int8-dynamic" in page and "Sensitivity of" in page
    run_cli("report", "--format", "md", "--output", str(tmp_path / "r.md"), check=True)
    md = (tmp_path / "r.md").read_text()
    assert "onnx-int8-dynamic (on full) bought" in md and "| * |" in md
    bad = run_cli("report", "--format", "pdf")
    assert bad.returncode == 2 and "unknown report format" in bad.stderr


def test_quality_only_eval_does_not_switch_frontier_or_pick_to_an_empty_group(csv_data, tmp_path):
    parent, child = evaluated_pair(csv_data, tmp_path, "int8-dynamic")
    other = tmp_path / "other.csv"
    other.write_text(csv_data.read_text(encoding="utf-8"), encoding="utf-8")
    run_cli("eval", str(parent), "--data", str(other), "--no-speed", check=True)  # the latest eval, no costs
    res = json.loads(run_cli("frontier", "--json", check=True).stdout)
    assert res["group"]["data"].endswith("reviews.csv")
    measured = res["frontier"] + res["dominated"]
    assert {x["lineage"] for x in measured} == {"full", "full>int8-dynamic"}
    reasons = [x["reason"] for x in res["not_comparable"]]
    # the row is of other data: that, not its missing latency, is why it is not compared
    assert reasons == [f"evaluated on {other} [dev]"]  # a byte-identical copy of the training data
    # a budget only the faster variant meets: pick finds it, not "max_latency_ms missing"
    fast = min(measured, key=lambda x: x["costs"]["latency_b1"])
    limit = fast["costs"]["latency_b1"] * 1.001
    within = [x for x in measured if x["costs"]["latency_b1"] <= limit]
    best = max(within, key=lambda x: x["metrics"]["accuracy"])
    got = json.loads(run_cli("pick", "--max-latency-ms", str(limit), "--json", check=True).stdout)
    assert got["pick"]["artifact"] == best["artifact"] and got["within_budget"] == len(within)


def test_cheapest_within_a_floor_is_the_lowest_cost_that_holds_it():
    from supremum.frontier.pick import cheapest

    store = Store()
    record_eval(store, "r0", "elsewhere", 0.99, 0.5, machine="cpu B")  # older, on another machine
    record_eval(store, "r1", "fast", 0.85, 2.0)
    record_eval(store, "r2", "slow", 0.90, 8.0)
    record_eval(store, "r3", "middle", 0.895, 4.0)
    got = cheapest(0.89, data="/data/reviews.csv", split="dev", store=store)
    assert (got["artifact"], got["value"], got["cost"], got["cost_value"]) == ("middle", 0.895, "latency_b1", 4.0)
    assert got["considered"] == 3, "another machine's row is not compared"
    none = cheapest(0.95, data="/data/reviews.csv", split="dev", store=store)  # evaluated, none holds it
    assert none["artifact"] is None and none["value"] is None and none["considered"] == 3
    from supremum.limit.verdict import _cheapest

    said = _cheapest(none, {"test": 0.96})
    assert said.startswith(f"no variant within 1 pt among the 3 evaluated on this split on {none['machine']}; "
                           "compress the best artifact")
    assert _cheapest(None, {"test": 0.96}).startswith("the cheapest variant within 1 pt: none evaluated on this")
    assert cheapest(0.5, data="/data/reviews.csv", split="test", store=store) is None
