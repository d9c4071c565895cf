"""Causal LMs through `run`, `compare` and `curve` on tiny-llama and a small text corpus: the
estimate and the data follow the language-model path (no classification loader on a .txt file),
and every artifact gets a finite held-out perplexity in its metrics and in the store."""

import importlib.util
import json
import math
import random

import pytest
import yaml
from conftest import run_cli

from supremum.store import Store

WORDS = "the king shall speak of love and war to thee my lord".split()
HAS_LLAMA_CPP = importlib.util.find_spec("llama_cpp") is not None


@pytest.fixture
def corpus(tmp_path):
    rng = random.Random(0)
    p = tmp_path / "corpus.txt"
    p.write_text("\n".join(" ".join(rng.choice(WORDS) for _ in range(6)) + "." for _ in range(400)) + "\n")
    return p


def _base(corpus, name: str) -> dict:
    return {"name": name, "model": {"name": "tiny-llama"}, "data": {"path": str(corpus), "max_length": 32}}


def _write(tmp_path, recipe: dict):
    path = tmp_path / f"{recipe['name']}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_a_causal_lm_pipeline_runs_every_stage_and_records_perplexity(corpus, tmp_path):
    stages = [{"id": "ft", "finetune": {"method": {"name": "full"}}},
              {"id": "int8", "from": "ft", "compress": {"method": "int8-dynamic"}},
              {"id": "dl", "from": "ft", "compress": {"method": "drop-layers", "num_layers": 1}},
              {"id": "kd", "from": "dl", "compress": {"method": "distill", "max_steps": 8, "batch_size": 8,
                                                      "eval_every": 8, "lr": 3e-3}}]
    if HAS_LLAMA_CPP:
        stages.append({"id": "gguf", "from": "ft", "compress": {"method": "gguf", "quant": "q8_0"}})
    recipe = {**_base(corpus, "lm"), "train": {"max_steps": 12, "batch_size": 8, "lr": 3e-3, "eval_every": 6},
              "stages": stages, "evaluate": {"splits": ["test"], "speed": False}}
    path = _write(tmp_path, recipe)
    dry = run_cli("run", str(path), "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert "no basis" not in dry.stderr and "estimated" in dry.stderr  # an LM-aware estimate of every stage
    assert all(r["estimate_s"] > 0 for r in json.loads(dry.stdout))
    proc = run_cli("run", str(path), "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert {r["stage"]: r["status"] for r in rows} == {s["id"]: "finished" for s in stages}
    for r in rows:
        m = json.loads((tmp_path / "home" / "pipelines" / "lm" / f"{r['stage']}-{r['hash']}" / "metrics.json")
                       .read_text())[f"{corpus.name}:test"]
        assert m["task"] == "text-generation" and math.isfinite(m["perplexity"]) and m["perplexity"] > 1
        stored = [x for x in Store().runs() if x["kind"] == "eval" and x["artifact_id"] == r["artifact"]]
        assert len(stored) == 1 and stored[0]["metrics"]["perplexity"] == m["perplexity"]
    again = run_cli("run", str(path), "--json")
    assert {r["status"] for r in json.loads(again.stdout)} == {"cached"}


def test_compare_and_curve_of_a_causal_lm_use_perplexity(corpus, tmp_path):
    cmp = {**_base(corpus, "lmcmp"), "train": {"max_steps": 6, "batch_size": 8, "lr": 3e-3},
           "methods": ["full", {"label": "lora", "method": {"name": "lora"}, "train": {"lr": 3e-2}}],
           "seeds": [0], "evaluate": {"splits": ["test"]}}
    proc = run_cli("compare", str(_write(tmp_path, cmp)), "--json")
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    assert s["metric"] == "perplexity" and len(s["rows"]) == 2
    ppl = {r["variant"]: r["test"]["mean"] for r in s["rows"]}
    assert all(math.isfinite(x) and x > 1 for x in ppl.values())
    assert next(r for r in s["rows"] if r["note"] == "best")["variant"] == min(ppl, key=ppl.get)  # lower wins
    crv = {"model": {"name": "tiny-llama"}, "data": {"path": str(corpus), "max_length": 32},
           "method": {"name": "full"}, "train": {"batch_size": 8, "lr": 3e-3, "epochs": 1}, "min_steps": 4,
           "fractions": [0.25, 0.5, 0.75, 1.0], "seeds": [0], "bootstrap": 20, "name": "lmcurve"}
    curve = run_cli("curve", "--recipe", str(_write(tmp_path, crv)), "--json")
    assert curve.returncode == 0, curve.stderr
    c = json.loads(curve.stdout)
    floor = c["floor"]
    assert c["metric"] == "perplexity" and math.isfinite(floor["perplexity"]) and floor["perplexity"] >= 1
    # a floor of perplexity 1 (zero loss) is allowed only as an unidentified one, with its interval
    assert floor["ci"][0] <= floor["perplexity"] <= floor["ci"][1]
    assert floor["perplexity"] > 1 or floor["verdict"] == "not identified"
    assert sorted({p["n"] for p in c["points"]})[-1] == c["n_train"]  # whole set = every training block
    assert all(p["error"] > 0 for p in c["points"])  # ln perplexity
