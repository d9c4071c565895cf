"""Every benchmark's --quick run (tiny model, tiny data written to a temp dir, a few steps), so a
benchmark that breaks shows up in the test suite rather than when someone reruns it. Each run
writes its JSON to --out and leaves bench/results/ alone."""

import hashlib
import importlib.util
import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[1] / "bench"
pytestmark = pytest.mark.bench_smoke


def _quick(script: str, tmp_path, *parts: str) -> dict:
    kept = BENCH / "results" / f"{Path(script).stem}.json"
    before = hashlib.sha256(kept.read_bytes()).hexdigest() if kept.exists() else None
    out = tmp_path / "out.json"
    env = {**os.environ, "SUPREMUM_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    env.pop("SUPREMUM_DATA", None)  # --quick brings its own data
    p = subprocess.run([sys.executable, str(BENCH / script), *parts, "--quick", "--out", str(out)], env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-8000:]
    after = hashlib.sha256(kept.read_bytes()).hexdigest() if kept.exists() else None
    assert after == before, f"--quick wrote over {kept}"
    return json.loads(out.read_text())


def test_finetune_sst2_quick_runs_ours_and_the_hf_trainer(tmp_path):
    res = _quick("finetune_sst2.py", tmp_path)
    r = res["results"]
    assert set(r) == {"ours-full", "hf-full", "hf-lora", "ours-lora-d0"}
    assert all("error" not in v and v["steps"] == 4 and 0 <= v["dev_accuracy"] <= 1 for v in r.values()), r
    assert set(res["ratios"]) == {"ours-full / hf-full", "ours-lora-d0 / ours-full"}
    assert r["ours-full"]["precision"]["resolved"] == "fp32"
    assert r["ours-lora-d0"]["trainable_params"] < r["ours-full"]["trainable_params"]


def test_compress_sst2_quick_makes_and_times_each_kind_of_variant(tmp_path):
    v = _quick("compress_sst2.py", tmp_path)["variants"]
    assert set(v) == {"parent", "onnx-int8-dynamic", "L1+int8-dynamic"}
    assert v["L1+int8-dynamic"]["chain"] == ["drop-layers", "int8-dynamic"]
    assert all(x["b1_model"]["median_ms"] > 0 and 0 <= x["dev_accuracy"] <= 1 for x in v.values())


def test_methods_sst2_quick_compares_two_methods(tmp_path):
    s = _quick("methods_sst2.py", tmp_path)["summary"]
    assert [r["variant"] for r in s["rows"]] == ["full", "lora"] and s["cells"] == 2
    assert all(0 <= r["test"]["mean"] <= 1 for r in s["rows"])


def test_ddp_scaling_quick_runs_one_and_two_processes(tmp_path):
    res = _quick("ddp_scaling.py", tmp_path)
    assert res["one_process"]["steps"] == res["two_processes"]["steps"] == res["two_processes_fsdp"]["steps"] == 3
    assert res["speedup"] > 0 and res["allreduce_seconds"]["n"] == 10


def test_limit_markov_quick_fits_and_checks_the_entropy_rate(tmp_path):
    res = _quick("limit_markov.py", tmp_path)
    assert len(res["runs"]) == 6 and res["runs_trained_now"] == 6
    assert isinstance(res["targets"]["H_in_ci"], bool) and math.isfinite(res["targets"]["abs_rel_error"])


def test_limit_shakespeare_quick_fits_real_text(tmp_path):
    res = _quick("limit_shakespeare.py", tmp_path)
    assert len(res["runs"]) == 6 and math.isfinite(res["fit"]["E"])
    assert "holdout_within_3pct" in res["targets"]


def test_llm_shakespeare_quick_finetunes_compresses_and_evaluates(tmp_path):
    res = _quick("llm_shakespeare.py", tmp_path)["variants"]
    want = {"base", "lora", "int8-dynamic"} | ({"gguf-q8_0"} if importlib.util.find_spec("llama_cpp") else set())
    assert set(res) == want
    assert all(math.isfinite(v["perplexity"]) and v["perplexity"] > 1 and v["decode_tokens_per_s"] > 0
               for v in res.values())


def test_serve_load_quick_drives_both_modes(tmp_path):
    res = _quick("serve_load.py", tmp_path)
    for mode in ("batching", "no-batching"):
        assert res[mode]["requests_ok"] > 0 and res[mode]["errors"] == 0, res[mode]


def test_serve_generate_quick_measures_batched_and_one_at_a_time(tmp_path):
    res = _quick("serve_generate.py", tmp_path)
    assert res["settings"]["model"] == "tiny-llama" and res["settings"]["new_tokens"] == 8
    want = {"fp32"} | ({"gguf-q8_0"} if importlib.util.find_spec("llama_cpp") else set())
    assert set(res["variants"]) == want
    fp32 = res["variants"]["fp32"]
    for mode, clients in (("batched", ["1", "2"]), ("one-at-a-time", ["2"])):
        for c in clients:
            r = fp32[mode][c]
            assert r["errors"] == 0 and r["requests"] == int(c), r
            assert r["tokens_per_s"] == pytest.approx(r["completion_tokens"] / r["wall_s"])
            assert 0 < r["p50_latency_s"] <= r["p95_latency_s"]
    assert fp32["speedup"]["2"] == pytest.approx(fp32["batched"]["2"]["tokens_per_s"]
                                                 / fp32["one-at-a-time"]["2"]["tokens_per_s"])


def test_ceiling_quick_plants_label_noise_and_scores_the_estimate(tmp_path):
    res = _quick("ceiling.py", tmp_path, "label-noise")
    ln = res["label-noise"]
    assert res["machine"]["cores"] >= 1 and res["settings"]["model"] == "tiny-bert"
    assert [(r["share"], r["split"]) for r in ln["rows"]] == [(0.0, "train"), (0.0, "test"), (0.1, "train"),
                                                               (0.1, "test")]
    for r in ln["rows"]:
        n = {"train": 200, "test": 48}[r["split"]]
        assert r["examples"] == n and r["planted"] == round(r["share"] * n) / n
        # binary: truth = planted + native (1 - 2 planted), native = the 0% estimate of that split
        native = next(x["estimate"] for x in ln["rows"] if x["share"] == 0 and x["split"] == r["split"])
        assert r["truth"] == pytest.approx(r["planted"] + native * (1 - 2 * r["planted"]))
        assert r["ci_contains_truth"] == (r["ci"][0] <= r["truth"] <= r["ci"][1])
        q = r["flags_vs_flipped"]
        assert q["wrong"] == round(r["share"] * n) and q["flagged"] == ln["runs"][f"{r['share']:g}"]["splits"][
            r["split"]]["suspects"]
    assert ln["summary"]["ci_contains_truth"].endswith("/2")


def test_ceiling_quick_predicts_the_full_data_run_from_a_share(tmp_path):
    res = _quick("ceiling.py", tmp_path, "predict")
    assert set(res) == {"machine", "settings", "predict"}
    p, mr = res["predict"], res["predict"]["datasets"]["mr"]
    # MR's one file of 300, split by the library (stratified): 239 train rows, 30 test; fit on 1/8..1/2
    assert (mr["n_train"], mr["n_eval"], mr["split"]) == (239, 30, "test")
    assert sorted(r["n"] for r in mr["runs"]) == [30, 60, 90, 120, 239]
    [row] = p["rows"]
    assert (row["dataset"], row["share"], row["sizes"], row["runs"]) == ("mr", 0.5, [30, 60, 90, 120], 4)
    full = next(r["accuracy"] for r in mr["runs"] if r["n"] == 239)
    assert row["measured_mean"] == full and row["measured_std"] is None  # one seed
    assert row["error_pt"] == round(100 * (row["predicted"] - full), 2)
    lo, hi = row["ci"]
    assert lo <= row["predicted"] <= hi and row["ci_contains_measured"] == (lo <= full <= hi)
    assert p["summary"] == {"0.5": {"mean_abs_error_pt": round(abs(row["error_pt"]), 2), "target_pt": None,
                                    "hit": None, "ci_contains_measured": f"{int(row['ci_contains_measured'])}/1"}}


def test_ceiling_quick_search_against_a_grid_of_the_same_budget(tmp_path):
    res = _quick("ceiling.py", tmp_path, "search")
    s, g, sm = res["search"]["search"], res["search"]["grid"], res["search"]["summary"]
    trials = s["trials"]
    assert len(trials) == 3 and s["stopped"] == "n_trials"
    assert trials[0]["params"]["method"] == "full" and trials[0]["params"]["lr_full"] == 3e-3  # the base first
    assert [(p["method"], p["lr"]) for p in g["points"]] == [("full", pytest.approx(3e-3)),
                                                               ("lora", pytest.approx(3e-2)),
                                                               ("full", pytest.approx(3e-4))]
    assert [p["ended_s"] for p in g["points"]] == pytest.approx(list(itertools.accumulate(
        p["seconds"] for p in g["points"])))
    best = max(p["dev"] for p in g["points"] if p["dev"] is not None)  # a diverged point has none
    assert all((p["dev"] is None) == bool(p["error"]) for p in g["points"])
    assert sm["grid_best_dev"] == best and g["best"]["dev"] == best
    assert g["seconds_to_best"] == next(p["ended_s"] for p in g["points"] if p["dev"] == best)
    done = [t for t in trials if t["state"] == "COMPLETE"]
    assert sm["search_best_dev"] == max(t["value"] for t in done)
    assert [t["cumulative_s"] for t in trials] == pytest.approx(list(itertools.accumulate(
        t["seconds"] for t in trials)), abs=0.01)
    reach = [t["cumulative_s"] for t in done if t["value"] >= best]
    assert sm["search_seconds_to_grid_best"] == (min(reach) if reach else None)
    assert sm["search_hit_target"] == (sm["search_best_dev"] >= 0.9)
    assert sm["search_minus_hand_tuned_pt"]["full"] == round(100 * (sm["search_best_dev"] - 0.8865), 2)
    # only the grid's best artifact is kept
    [grid_dir] = Path(res["settings"]["work"]).glob("search-*/grid")
    kept = sorted(d.name for d in grid_dir.iterdir() if d.is_dir())
    assert [k for k in kept if not k.endswith("-adapter")] == [f"point-{g['best']['index']}"]


def test_ceiling_quick_search_sides_run_apart_and_compare_with_against(tmp_path):
    """One side per run (each fits a session), the other's JSON put beside it with its machine."""
    alone = _quick("ceiling.py", tmp_path, "search", "--sides", "search")["search"]
    assert "grid" not in alone and alone["summary"]["grid_best_dev"] is None
    assert alone["summary"]["search_minus_grid_pt"] is None and alone["summary"]["search_best_dev"] is not None
    first = tmp_path / "search-side.json"
    first.write_text((tmp_path / "out.json").read_text())
    both = _quick("ceiling.py", tmp_path, "search", "--sides", "grid", "--against", str(first))["search"]
    mine = {k: v for k, v in both["search"].items() if k != "seconds_to_grid_best"}  # known only beside a grid
    assert mine == {k: v for k, v in alone["search"].items() if k != "seconds_to_grid_best"}
    assert both["search_from"]["file"] == str(first)
    assert both["search_from"]["machine"]["cores"] >= 1
    sm, best = both["summary"], both["grid"]["best"]["dev"]
    assert sm["grid_best_dev"] == best and sm["search_best_dev"] == alone["summary"]["search_best_dev"]
    assert sm["search_minus_grid_pt"] == round(100 * (sm["search_best_dev"] - best), 2)
    done = [t for t in alone["search"]["trials"] if t["state"] == "COMPLETE"]
    reach = min((t["cumulative_s"] for t in done if t["value"] >= best), default=None)
    assert sm["search_seconds_to_grid_best"] == both["search"]["seconds_to_grid_best"] == reach


def test_labels_sst2_quick_scores_each_approach_on_the_same_test_split(tmp_path):
    res = _quick("labels_sst2.py", tmp_path)
    assert res["test"]["examples"] == 48 and res["budgets"] == [0, 16]
    assert sorted((p["approach"], p["budget"]) for p in res["points"]) == [
        ("active", 16), ("linear-probe", 16), ("self-training", 16), ("setfit", 16), ("zeroshot", 0)]
    assert all(0.0 <= p["accuracy"] <= 1.0 for p in res["points"])
    assert {(s["approach"], s["reason"].split(";")[0]) for s in res["skipped"]} == {
        ("zeroshot", "a prompt holds at most incontext.max_shots=4 examples"),
        ("linear-probe", "needs a labelled example of every class"),
        ("setfit", "needs 2 labelled examples of every class (a positive pair of each)"),
        ("active", "below the random seed set of 8 labels (active.seed_size)"),
        ("self-training", "needs a labelled example of every class")}
    by = {p["approach"]: p for p in res["points"]}
    assert by["active"]["test_sha256"] == res["test"]["sha256"] and sum(by["active"]["label_counts"]) == 16
    assert by["self-training"]["unlabeled"]["texts"] == 200 - 16
    # one sentence per budget, and one more when self-training added no pseudo-label (it does not,
    # on this tiny run: no text reaches the 0.9 threshold)
    idle = by["self-training"]["pseudo_labelled"] == 0
    assert len(res["sentences"]) == 2 + idle and res["published"]["setfit"]["test_accuracy"] == 0.751
    assert idle == ("added no pseudo-label in any seed" in res["sentences"][-1])


def test_labels_quick_on_mr_makes_its_test_split_and_prompts_with_the_label_names(tmp_path):
    res = _quick("labels_sst2.py", tmp_path, "--dataset", "mr", "--approaches", "zeroshot,linear-probe",
                 "--budgets", "0,16,32", "--max-labels", "linear-probe=16")
    assert res["dataset"] == "mr" and res["published"] == {} and res["config"]["data"]["path"].endswith("mr.jsonl")
    assert res["test"]["examples"] == 30  # 10% of MR's 300 tiny rows, made stratified with seed 0
    assert res["config"]["incontext"]["verbalizers"] is None  # the label names are the words
    assert sorted((p["approach"], p["budget"]) for p in res["points"]) == [("linear-probe", 16), ("zeroshot", 0)]
    assert ("linear-probe", 32) in {(x["approach"], x["budget"]) for x in res["skipped"]}  # above --max-labels


def test_active_sst2_quick_simulates_a_strategy_against_random(tmp_path):
    res = _quick("active_sst2.py", tmp_path)
    assert [(r["strategy"], [p["n_labels"] for p in r["curve"]], r["revealed"]) for r in res["runs"]] == [
        ("random", [10, 20], 20), ("margin+kcenter", [10, 20], 20)]
    # both start from the same seed set, so the first round is the same model
    assert res["runs"][0]["curve"][0] == res["runs"][1]["curve"][0]
    ref = res["match"]["reference"]
    assert ref == {"strategy": "random", "n_labels": 20, "mean": res["runs"][0]["curve"][1]["accuracy"]}
    t = res["target"]["strategies"]["margin+kcenter"]
    n = t["n_labels"]
    assert t["verdict"] == ("not reached within the budget" if n is None else "met" if n <= 12
                            else f"missed by {n - 12} labels")
    assert Path(res["plot"]).exists() and res["eval_examples"] == 48 and res["pool"] == 200
    # two rounds: one change (patience is 2) and two points (a fit needs 4): neither rule can fire
    assert [r["would_stop_at"] for r in res["runs"]] == [{"stable predictions": None, "learning curve": None}] * 2
    assert [r["curve"][0]["changed"] for r in res["runs"]] == [None, None]


@pytest.mark.slow
def test_active_sst2_merges_per_seed_runs_into_one_result(tmp_path):
    """Seeds run as separate processes combine into the result one process of both would give:
    every run kept, the means recomputed over both seeds, and the same seed twice refused."""
    one = [_quick("active_sst2.py", tmp_path / f"s{s}", "--seeds", str(s)) for s in (0, 1)]
    files = [tmp_path / f"s{s}" / "out.json" for s in (0, 1)]
    out = tmp_path / "merged.json"
    cmd = [sys.executable, str(BENCH / "active_sst2.py"), "--merge", ",".join(map(str, files)), "--out", str(out)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["config"]["seeds"] == [0, 1] and len(res["runs"]) == 4 and Path(res["plot"]).exists()
    for strategy, pts in res["summary"].items():
        for i, pt in enumerate(pts):
            accs = [r["curve"][i]["accuracy"] for o in one for r in o["runs"] if r["strategy"] == strategy]
            assert pt["n"] == 2 and pt["mean"] == pytest.approx(sum(accs) / 2)
    assert res["match"]["reference"]["mean"] == res["summary"]["random"][-1]["mean"]
    assert [x["seeds"] for x in res["parts"]] == [[0], [1]]
    twice = subprocess.run([*cmd[:3], f"{files[0]},{files[0]}", "--out", str(tmp_path / "x.json")],
                           capture_output=True, text=True, timeout=120)
    assert twice.returncode == 2 and "error: --merge: a seed appears in more than one file" in twice.stderr
    assert not (tmp_path / "x.json").exists()
    gone = subprocess.run([*cmd[:3], f"{files[0]},{tmp_path / 'nope.json'}", "--out", str(tmp_path / "x.json")],
                          capture_output=True, text=True, timeout=120)
    nope = tmp_path / "nope.json"
    assert (gone.returncode, gone.stderr) == (2, f"error: --merge: no such result file: {nope}\n")


def test_calibrate_sst2_quick_fits_a_temperature_and_measures_test_ece(tmp_path):
    res = _quick("calibrate_sst2.py", tmp_path)
    before, after = res["test"]["parent"], res["test"]["calibrated"]
    assert res["temperature"] > 0 and res["dev_fit"]["after"]["nll"] <= res["dev_fit"]["before"]["nll"]
    assert after["accuracy"] == before["accuracy"] and res["target"]["accuracy_unchanged"]
    assert res["target"]["test_ece_after"] == after["ece"]
    assert sum(b["count"] for b in after["reliability"]) == 48  # the quick data's test split


def test_explain_sst2_quick_scores_every_method_times_ig_and_measures_drift(tmp_path):
    res = _quick("explain_sst2.py", tmp_path, "--child", "int8-dynamic")
    f = res["faithfulness"]
    assert list(f["methods"]) == ["integrated-gradients", "input-x-gradient", "occlusion", "attention-rollout"]
    rnd = f["random"]["comprehensiveness"]
    assert len(rnd["per_seed"]) == 2 and res["settings"]["examples"] == res["timing"]["examples"] == 6
    ig = f["methods"]["integrated-gradients"]
    # 4 training steps: random's comprehensiveness may be <= 0, where no ratio is taken
    from supremum.explain.faithfulness import MIN_DROP

    want = ig["comprehensiveness"] / rnd["mean"] if rnd["mean"] > MIN_DROP else None
    assert ig["vs_random"] == (pytest.approx(want) if want is not None else None)
    assert res["target"]["ig_met"] == (want is not None and want >= 2.0)
    assert res["target"]["seconds_per_100"] == pytest.approx(res["timing"]["seconds"] * 100 / 6)
    assert 0 < res["timing"]["ig_attribution_seconds"] <= res["timing"]["seconds"]
    d = res["drift"]
    # int8 dynamic kernels have no gradients: only occlusion and attention rollout are compared
    assert list(d["methods"]) == ["occlusion", "attention-rollout"] and d["against"] == res["settings"]["parent"]
    assert d["compared"] == 6 and 0 <= d["prediction_agreement"] <= 1
    assert all(0 <= s["top_k_overlap"]["5"]["mean"] <= 1 for s in d["methods"].values())


def test_generate_multi30k_quick_scores_answers_of_base_lora_and_gguf(tmp_path):
    res = _quick("generate_multi30k.py", tmp_path)
    want = {"base", "lora"} | ({"gguf-q8_0"} if importlib.util.find_spec("llama_cpp") else set())
    assert set(res["variants"]) == want and res["rows"] == {"train": 40, "dev": 8, "test": 6}
    for v in res["variants"].values():
        assert 0 <= v["chrf"] <= 100 and 0 <= v["exact_match"] <= 1 and v["answers"] == 6
        assert v["decode_tokens_per_s"] > 0 and v["generation_tokens_per_s"] > 0
        assert len(open(v["outputs"], encoding="utf-8").readlines()) == 6
    assert res["variants"]["lora"]["forgetting_vs"] == "tiny-llama (base model)"
    assert res["variants"]["base"]["forgetting_pct"] is None  # a base model has no parent


def test_forgetting_shakespeare_quick_scores_task_gain_and_forgetting(tmp_path):
    res = _quick("forgetting_shakespeare.py", tmp_path)
    assert set(res["variants"]) == {"base", "full", "lora", "lora+replay"}
    for name in ("full", "lora", "lora+replay"):
        v = res["variants"][name]
        rise = v["reference_perplexity"] / v["base_reference_perplexity"] - 1
        assert v["forgetting_pct"] == pytest.approx(100 * rise)
        assert res["summary"]["task_gain_pct"][name] == pytest.approx(
            100 * (1 - v["task_perplexity"] / res["variants"]["base"]["task_perplexity"]))
    replay = res["finetunes"]["lora+replay"]["replay"]
    assert replay["share"] == 0.2 and replay["replay_rows"] > 0 and replay["file"].endswith("valid.txt")
    assert res["finetunes"]["lora"]["replay"] is None


def _phase_stats_hold(r: dict) -> None:
    for stat in (r["wall_ms"], r["cpu_ms"], *r["phases_ms"].values()):
        assert 0 <= stat["q1"] <= stat["median"] <= stat["q3"], r
    assert all(r["phases_ms"][p]["median"] > 0 for p in ("data", "forward", "backward", "clip", "optimizer")), r
    assert r["samples_per_s"] == round(32 / (r["wall_ms"]["median"] / 1000), 1) and 0 <= r["padding_share"] < 1


def test_profile_step_quick_breaks_a_real_step_into_phases_and_ops(tmp_path):
    res = _quick("profile_step.py", tmp_path)
    assert res["method"]["warmup_steps"] == 1 and res["method"]["timed_steps"] == 3 and "cpu" in res["machine"]
    full, lora = res["results"]["full-fp32"], res["results"]["lora-bf16"]
    for r in (full, lora):
        _phase_stats_hold(r)
        ops = r["top_ops"]
        assert len(ops) == 10 and ops == sorted(ops, key=lambda o: -o["self_cpu_ms_per_step"])
        assert not {o["op"] for o in ops} & {"step", "data", "forward", "backward"}
        assert sum(o["share"] for o in ops) <= 1
    # full fine-tuning trains every weight; LoRA freezes exactly those (its head is a trained copy)
    assert full["trainable_params"] == full["total_params"]
    assert lora["total_params"] - lora["trainable_params"] == full["total_params"]


def test_profile_step_quick_side_by_side_interleaves_variants_in_one_process(tmp_path):
    res = _quick("profile_step.py", tmp_path, "--side-by-side", "--variants", "full-fp32,lora-nodropout-fp32")
    r = res["results"]
    for v in r.values():
        _phase_stats_hold(v)
    ratio = res["step_time_ratios"]["lora-nodropout-fp32 / full-fp32"]
    for k in ("wall_ms", "cpu_ms"):
        assert ratio[k] == round(r["lora-nodropout-fp32"][k]["median"] / r["full-fp32"][k]["median"], 3)
