"""Method comparison: cells in their own processes, mean +- std over seeds, noise notes, reuse."""

import json

import pytest
from conftest import run_cli

from supremum.compare import CompareConfig, cells, summarize
from supremum.config import DataConfig, TrainConfig
from supremum.store import Store


def recipe(data):
    return {"name": "t", "model": {"name": "tiny-bert"}, "data": {"path": str(data)},
            "train": {"max_steps": 6, "batch_size": 8, "lr": 3e-3},
            "methods": ["full", {"label": "lora-fgm", "method": {"name": "lora"},
                                 "train": {"adversarial": {"method": "fgm"}}}],
            "seeds": [0, 1], "evaluate": {"splits": ["dev", "test"], "perturb": "typo:0.1"}}


def test_compare_cli_runs_cells_summarizes_and_reuses(csv_data, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(recipe(csv_data)))
    dry = json.loads(run_cli("compare", str(path), "--dry-run", "--json", check=True).stdout)
    assert [(d["variant"], d["seed"], d["status"]) for d in dry] == [
        ("full", 0, "to run"), ("full", 1, "to run"), ("lora-fgm", 0, "to run"), ("lora-fgm", 1, "to run")]
    s = json.loads(run_cli("compare", str(path), "--json", check=True).stdout)
    rows = {r["variant"]: r for r in s["rows"]}
    assert set(rows) == {"full", "lora-fgm"} and s["cells"] == 4 and s["cached_cells"] == 0
    for r in rows.values():
        assert r["dev"]["n"] == 2 and r["test"]["std"] is not None and 0 <= r["test"]["mean"] <= 1
        assert "typo:0.1" in r and r["peak_rss_mb"] > 0 and r["train_seconds"]["median"] > 0
    assert rows["lora-fgm"]["trainable_fraction"] < rows["full"]["trainable_fraction"] == 1.0
    assert sorted(r["note"] == "best" for r in rows.values()) == [False, True]
    finetunes = [r for r in Store().runs() if r["kind"] == "finetune"]
    assert len(finetunes) == 4  # the cells' runs are in the store
    (cmp,) = [r for r in Store().runs() if r["kind"] == "compare"]
    assert cmp["status"] == "finished" and len(cmp["metrics"]["rows"]) == 2

    again = run_cli("compare", str(path), check=True)
    assert "4 of 4 cells reused" in again.stdout and "lora-fgm" in again.stdout
    bad = recipe(csv_data)
    bad["methods"] = ["full", "full"]
    path.write_text(json.dumps(bad))
    out = run_cli("compare", str(path))
    assert out.returncode == 2 and "distinct label" in out.stderr


def test_grid_crosses_every_variant(csv_data):
    cfg = CompareConfig.model_validate({**recipe(csv_data), "grid": {"train.lr": [1e-3, 3e-3]}, "seeds": [5]})
    got = [(c["variant"], c["config"]["train"]["lr"], c["config"]["train"]["seed"]) for c in cells(cfg)]
    assert got == [("full lr=0.001", 1e-3, 5), ("full lr=0.003", 3e-3, 5),
                   ("lora-fgm lr=0.001", 1e-3, 5), ("lora-fgm lr=0.003", 3e-3, 5)]
    assert len({c["hash"] for c in cells(cfg)}) == 4


def test_noise_notes_follow_welch():
    cfg = CompareConfig.model_validate({"name": "n", "data": {"path": "x.csv"}, "methods": ["a", "b", "c"],
                                        "evaluate": {"splits": ["test"]}})

    def res(variant, accs):
        return [{"variant": variant, "method": variant, "seed": i, "accuracy": {"test": a}, "cached": False,
                 "trainable_params": 1, "trainable_fraction": 1.0, "train_seconds": 1.0, "peak_rss_mb": 1.0}
                for i, a in enumerate(accs)]

    s = summarize(res("a", [0.90, 0.91, 0.92]) + res("b", [0.905, 0.90, 0.915]) + res("c", [0.70, 0.71, 0.72]),
                  cfg)
    notes = {r["variant"]: r["note"] for r in s["rows"]}
    assert notes["a"] == "best" and notes["b"].startswith("within noise of a")
    assert notes["c"].startswith("below a")
    assert {r["variant"]: r["test"]["std"] for r in s["rows"]}["a"] == pytest.approx(0.01)


def test_report_shows_the_latest_comparison(csv_data, tmp_path):
    from conftest import evaluated_pair

    from supremum.frontier.report import build, markdown, render_html

    evaluated_pair(csv_data, tmp_path, "fp16")
    cfg = CompareConfig.model_validate({"name": "methods", "data": {"path": "x.csv"}, "methods": ["full", "lora"],
                                        "evaluate": {"splits": ["test"]}})
    rows = [{"variant": v, "method": v, "seed": i, "accuracy": {"test": a + i / 100}, "cached": False,
             "trainable_params": 10, "trainable_fraction": 0.5, "train_seconds": 2.0, "peak_rss_mb": 3.0}
            for v, a in (("full", 0.9), ("lora", 0.8)) for i in range(3)]
    store = Store()
    store.start_run("c1", "compare", "", {}, {})
    store.finish_run("c1", summarize(rows, cfg))
    rep = build(store)
    md, page = markdown(rep), render_html(rep)
    assert "## Method comparison methods" in md and "| lora | 81.00 ± 1.00 |" in md
    assert "Method comparison methods" in page and "<td>below full (p=" in page


def test_shipped_compare_recipes_validate(monkeypatch):
    from pathlib import Path

    from supremum.recipe import build, load_yaml

    monkeypatch.setenv("SUPREMUM_DATA", "/data")
    paths = sorted((Path(__file__).parent.parent / "recipes" / "compare").glob("*.yaml"))
    assert paths
    for p in paths:
        raw, lines = load_yaml(p)
        cfg = build(CompareConfig, raw, str(p), lines)
        assert cfg.data.path.startswith("/data/") and len(cells(cfg)) == len(cfg.methods) * len(cfg.seeds)


@pytest.mark.parametrize(("override", "dry"), [("data", True), ("data", False), ("train", False),
                                               ("method", True)])
def test_a_bad_key_in_the_last_variant_stops_compare_before_any_cell_runs(csv_data, tmp_path, dry, override):
    r = recipe(csv_data)
    last = {"label": "late", "method": {"name": "lora"}}
    last[override] = {**last.get(override, {}), "trian_limit": 50}
    r["methods"] = [*r["methods"], last]
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(r))
    proc = run_cli("compare", str(path), *(["--dry-run"] if dry else []))
    valid = {"data": "valid keys under data: " + ", ".join(sorted(DataConfig.model_fields)),
             "train": "valid keys under train: " + ", ".join(sorted(TrainConfig.model_fields)),
             "method": "valid keys under method: alpha, dora, dropout, merge, name, r, rslora, target_modules"}
    guess = "did you mean 'train_limit'? " if override == "data" else ""
    assert (proc.returncode, proc.stderr) == (
        2, f"error: compare variant 'late': unknown key '{override}.trian_limit' ({guess}{valid[override]})\n")
    assert Store().runs() == [] and not (Store().root / "compare").exists()  # no cell ran


def test_a_cached_cell_is_evaluated_on_a_split_it_lacks_without_training_again(csv_data):
    """The cell hash is the fine-tune's alone: a study asking for the dev split finds a cached
    result that holds test only (it raised KeyError). Its kept artifact is evaluated on dev, in the
    cell's worker; nothing trains again, and the score is the artifact's own on dev."""
    import supremum
    from supremum.compare import run

    r = {**recipe(csv_data), "methods": ["full"], "seeds": [0], "evaluate": {"splits": ["test"]}}
    first = run(CompareConfig(**r))
    said = []
    again = run(CompareConfig(**{**r, "evaluate": {"splits": ["dev", "test"], "perturb": "typo:0.1"}}),
                on_event=said.append)
    assert [x["kind"] for x in Store().runs()].count("finetune") == 1  # not trained again
    # dev is missing, and test again: the robustness asked is measured on the last split
    assert any("not evaluated on dev, test; evaluating its artifact" in m for m in said), said
    (row,), (before,) = again["rows"], first["rows"]
    assert again["cached_cells"] == 1 and row["test"]["mean"] == before["test"]["mean"]
    (art,) = [x for x in Store().runs() if x["kind"] == "finetune"]
    dev = supremum.evaluate(art["artifact_id"], None, {"split": "dev", "speed": False})
    test = supremum.evaluate(art["artifact_id"], None, {"split": "test", "speed": False, "perturb": "typo:0.1"})
    assert row["dev"]["mean"] == dev["accuracy"]
    assert row["typo:0.1"]["mean"] == test["robustness"]["typo:0.1"]["accuracy"]  # on test, the last split


def test_a_cached_cell_without_a_sound_artifact_trains_again(tmp_path):
    import json

    from supremum.compare import _complete_splits

    cfg = CompareConfig(**{**recipe(tmp_path / "x.csv"), "evaluate": {"splits": ["dev", "test"]}})
    never = lambda *a: pytest.fail("no worker runs for a cell without a sound artifact")  # noqa: E731
    said = []
    for metric, broken in (("accuracy", None), ("perplexity", "{not json")):
        r = tmp_path / metric / "result.json"
        r.parent.mkdir()
        r.write_text(json.dumps({metric: {"test": 0.8, "dev": 0.7}}))
        _complete_splits({}, r.parent, cfg, Store(), never, said.append)
        assert r.exists() and said == []  # every split there: kept as is
        r.write_text(json.dumps({metric: {"test": 0.8}}))
        if broken:
            (r.parent / "artifact").mkdir()
            (r.parent / "artifact" / "manifest.json").write_text(broken)
        _complete_splits({}, r.parent, cfg, Store(), never, said.append)
        assert not r.exists() and not (r.parent / "artifact").exists()
        line = said.pop()
        assert line.startswith(f"{metric}: the cached cell was not evaluated on dev and its artifact is "
                               "unusable (")
        assert ("corrupt manifest" if broken else "no such artifact directory") in line
        assert line.endswith("); running it again")
    _complete_splits({}, tmp_path / "none", cfg, Store(), never, said.append)  # nothing cached: nothing said
    assert said == []


def test_what_a_cached_result_lacks():
    """Missing splits; the last split again when the robustness asked was not measured (a
    classifier's); a complete result lacks nothing."""
    import json
    import tempfile
    from pathlib import Path

    from supremum.compare import _to_evaluate

    r = Path(tempfile.mkdtemp()) / "result.json"
    cases = [({"accuracy": {"dev": 0.7}}, ["dev", "test"], None, ["test"]),
             ({"accuracy": {"dev": 0.7, "test": 0.8}}, ["dev", "test"], "typo:0.1", ["test"]),
             ({"accuracy": {"dev": 0.7}, "robustness": {"typo:0.1": 0.6}}, ["dev"], "typo:0.1,case", ["dev"]),
             ({"accuracy": {"dev": 0.7}, "robustness": {"typo:0.1": 0.6}}, ["dev"], "typo:0.1", []),
             ({"accuracy": {"dev": 0.7}}, ["test", "dev"], "typo:0.1", ["test", "dev"]),
             ({"perplexity": {"dev": 9.0}}, ["dev"], "typo:0.1", [])]  # an LM has no robustness
    for result, splits, perturb, want in cases:
        r.write_text(json.dumps(result))
        assert _to_evaluate(r, splits, perturb) == want, (result, splits, perturb)
