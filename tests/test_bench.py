"""Every benchmark's --quick run (tiny model, tiny data written to a temp dir, a few steps), so a
benchmark that breaks shows up in the test suite rather than when someone reruns it. Each run
writes its JSON to --out and leaves bench/results/ alone."""

import hashlib
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[1] / "bench"
pytestmark = pytest.mark.bench_smoke


def _quick(script: str, tmp_path) -> dict:
    kept = BENCH / "results" / f"{Path(script).stem}.json"
    before = hashlib.sha256(kept.read_bytes()).hexdigest() if kept.exists() else None
    out = tmp_path / "out.json"
    env = {**os.environ, "SUPREMUM_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    env.pop("SUPREMUM_DATA", None)  # --quick brings its own data
    p = subprocess.run([sys.executable, str(BENCH / script), "--quick", "--out", str(out)], env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    after = hashlib.sha256(kept.read_bytes()).hexdigest() if kept.exists() else None
    assert after == before, f"--quick wrote over {kept}"
    return json.loads(out.read_text())


def test_finetune_sst2_quick_runs_ours_and_the_hf_trainer(tmp_path):
    res = _quick("finetune_sst2.py", tmp_path)
    r = res["results"]
    assert set(r) == {"ours-full", "hf-full", "hf-lora"}
    assert all("error" not in v and v["steps"] == 4 and 0 <= v["dev_accuracy"] <= 1 for v in r.values()), r
    assert set(res["ratios"]) == {"ours-full / hf-full"}


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


def test_ceiling_quick_plants_label_noise_and_scores_the_estimate(tmp_path):
    res = _quick("ceiling.py", tmp_path)
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
