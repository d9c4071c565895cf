"""lm-evaluation-harness model type `supremum` and `supremum lm-eval`, offline, on tiny-llama and a
four-question multiple-choice task over local JSONL (tests/data/lmeval/mc_tiny.jsonl)."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli

pytest.importorskip("lm_eval")

from lm_eval.api.instance import Instance  # noqa: E402

from supremum.lmeval.adapter import SupremumLM  # noqa: E402
from supremum.lmeval.run import LmEvalConfig, lm_eval  # noqa: E402
from supremum.store import Store  # noqa: E402

DATA = Path(__file__).parent / "data" / "lmeval" / "mc_tiny.jsonl"
PROMPT = "Question: {q}\nAnswer:"


@pytest.fixture
def tasks(tmp_path) -> Path:
    """The task's YAML over the local JSONL (lm-eval resolves data_files against the working
    directory, so the path is absolute)."""
    d = tmp_path / "tasks"
    d.mkdir()
    (d / "mc_tiny.yaml").write_text(f"""task: mc_tiny
dataset_path: json
dataset_kwargs:
  data_files:
    test: {DATA}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: answer
metric_list:
  - metric: acc
  - metric: acc_norm
metadata:
  version: 1.0
""")
    return d


def tiny():
    from supremum.models import load_model

    return load_model("tiny-llama", "causal-lm")


def hand_loglik(model, tok, context: str, continuation: str) -> float:
    """Summed log-probs of the continuation's tokens, straight from transformers' logits."""
    ctx = tok(context)["input_ids"]
    whole = tok(context + continuation)["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.tensor([whole])).logits[0].float(), -1)
    return float(sum(logp[i - 1, whole[i]] for i in range(len(ctx), len(whole))))


def requests(kind: str, *args: tuple) -> list[Instance]:
    return [Instance(request_type=kind, doc={}, arguments=a, idx=0) for a in args]


def test_multiple_choice_scores_equal_a_hand_computation_and_enter_the_frontier(tasks, tmp_path):
    from supremum.frontier import frontier

    store = Store(tmp_path / "store")
    cfg = LmEvalConfig(model="tiny-llama", tasks=["mc_tiny"], include_path=str(tasks), builtin_tasks=False)
    res = lm_eval(cfg, store=store)
    model, tok = tiny()
    docs = [json.loads(line) for line in DATA.read_text().splitlines()]
    right, right_norm = [], []
    for d in docs:
        lls = np.array([hand_loglik(model, tok, PROMPT.format(q=d["question"]), " " + c) for c in d["choices"]])
        right.append(int(np.argmax(lls)) == d["answer"])
        right_norm.append(int(np.argmax(lls / [len(c) for c in d["choices"]])) == d["answer"])
    m = res["tasks"]["mc_tiny"]
    assert (m["accuracy"], m["acc_norm"]) == (np.mean(right), np.mean(right_norm)) == (0.75, 0.0)
    assert (m["examples"], m["split"], m["data"]) == (4, "test", "lm-eval:mc_tiny")
    run = [r for r in store.runs() if r["kind"] == "lm-eval"]
    assert len(run) == 1 and run[0]["status"] == "finished" and run[0]["metrics"]["accuracy"] == 0.75
    front = frontier(data="lm-eval:mc_tiny", store=store)
    assert (front["metric"], front["cost"]) == ("accuracy", "params")
    assert [(v["artifact"], v["metrics"]["accuracy"], v["metrics"]["acc_norm"]) for v in front["frontier"]] == [
        ("tiny-llama (pytorch)", 0.75, 0.0)]
    assert front["group"]["protocol"] == "lm-eval 0.4.13, task v1.0, 0-shot, 4 examples"


def test_loglikelihood_is_hand_computed_with_is_greedy():
    model, tok = tiny()
    lm = SupremumLM(model=model, tokenizer=tok, batch_size=2)
    pairs = [("Question: A cat says\nAnswer:", " meow"), ("Two plus", " two equals four"), ("x ", "y")]
    got = lm.loglikelihood(requests("loglikelihood", *pairs), disable_tqdm=True)
    for (ctx, cont), (ll, _) in zip(pairs, got, strict=True):
        c, k = (ctx.rstrip(), ctx[len(ctx.rstrip()):] + cont)  # trailing spaces move to the continuation
        assert ll == pytest.approx(hand_loglik(model, tok, c, k), abs=1e-4)
    # is_greedy: true exactly when the continuation is the model's own greedy token
    ids = tok("Two plus")["input_ids"]
    with torch.no_grad():
        best = int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
    other = (best + 1) % 200 + 32
    greedy = lm.loglikelihood(requests("loglikelihood", ("Two plus", tok.decode([best])),
                                       ("Two plus", tok.decode([other]))), disable_tqdm=True)
    assert [g for _, g in greedy] == [True, False]


def test_rolling_loglikelihood_equals_perplexity_total_and_lm_eval_hflm():
    from lm_eval.models.huggingface import HFLM

    from supremum.lm.metrics import perplexity

    model, tok = tiny()
    text = "The quick brown fox jumps over the lazy dog. " * 3
    ids = [tok.bos_token_id] + tok(text)["input_ids"]
    lm = SupremumLM(model=model, tokenizer=tok)
    (one_window,) = lm.loglikelihood_rolling(requests("loglikelihood_rolling", (text,)), disable_tqdm=True)
    whole = perplexity(model, ids, window=len(ids), stride=len(ids))
    assert whole["tokens"] == len(ids) - 1
    assert one_window == pytest.approx(-whole["nll"], abs=1e-3)
    # a context of 16 tokens: lm-eval's disjoint windows, scored as lm-eval's own HFLM scores them
    short = SupremumLM(model=model, tokenizer=tok, max_length=16)
    ref = HFLM(pretrained=model, tokenizer=tok, max_length=16, batch_size=1, device="cpu")
    (mine,) = short.loglikelihood_rolling(requests("loglikelihood_rolling", (text,)), disable_tqdm=True)
    (theirs,) = ref.loglikelihood_rolling(requests("loglikelihood_rolling", (text,)), disable_tqdm=True)
    assert mine == pytest.approx(theirs, abs=1e-3) and mine < one_window  # less context, lower likelihood


def test_generate_until_is_greedy_generation_cut_at_the_stop_string():
    model, tok = tiny()
    prompt = "Once upon a time"
    ids = tok(prompt)["input_ids"]
    with torch.no_grad():
        out = model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones_like(torch.tensor([ids])),
                             max_new_tokens=24, do_sample=False, pad_token_id=tok.pad_token_id)
    full = tok.decode(out[0, len(ids):], skip_special_tokens=True)
    assert len(full) >= 12
    stop = full[8:10]
    lm = SupremumLM(model=model, tokenizer=tok)
    got = lm.generate_until(requests("generate_until", (prompt, {"until": [stop], "max_gen_toks": 24}),
                                     (prompt, {"until": ["\x00never"], "max_gen_toks": 24}),
                                     (prompt, {"until": ["\x00never"], "max_gen_toks": 5})), disable_tqdm=True)
    assert got[0] == full.split(stop)[0] and len(got[0]) <= 8
    assert got[1] == full
    assert got[2] == tok.decode(out[0, len(ids):len(ids) + 5], skip_special_tokens=True)


def test_bad_input_is_one_line_and_exit_2(tasks, tmp_path):
    from supremum.artifact import save_artifact
    from supremum.errors import UserError
    from supremum.models import load_model

    model, tok = load_model("tiny-bert", "classification", label_names=["neg", "pos"])
    save_artifact(model, tok, tmp_path / "clf", task="text-classification", label_names=["neg", "pos"],
                  base_model="tiny-bert", config={})
    cases = {
        ("tiny-llama", "nope", str(tasks)):
            f"unknown lm-eval task 'nope' in {tasks} (see `lm_eval ls tasks`; for your own task pass "
            "--include-path DIR holding its YAML)",
        ("tiny-llama", "mc_tiny", str(tmp_path / "none")):
            f"--include-path {tmp_path / 'none'}: no such directory (give the folder that holds your "
            "task YAML files)",
        (str(tmp_path / "clf"), "mc_tiny", str(tasks)):
            f"{tmp_path / 'clf'}: a text-classification artifact has no language-model head to score or "
            "generate text with (give a causal LM (alias, model directory, .gguf, or a causal-LM artifact))",
        ("tiny-bert", "mc_tiny", str(tasks)):
            "tiny-bert is an encoder (bert), not a causal language model: it cannot score a continuation "
            "(give a causal LM, e.g. smollm2-135m or tiny-llama)",
    }
    store = Store(tmp_path / "store")
    for (model_ref, task, include), line in cases.items():
        with pytest.raises(UserError) as e:
            lm_eval(LmEvalConfig(model=model_ref, tasks=[task], include_path=include, builtin_tasks=False),
                    store=store)
        assert str(e.value) == line
    assert [r["status"] for r in store.runs()] == []  # refused before any run started
    proc = run_cli("lm-eval", "tiny-llama", "--tasks", "nope", "--include-path", str(tasks), "--no-builtin-tasks")
    assert (proc.returncode, proc.stderr.strip().splitlines()) == (2, [f"error: {next(iter(cases.values()))}"])


def test_lm_eval_cli_runs_model_type_supremum(tasks, tmp_path):
    """lm-eval's own CLI, started as `python -m supremum.lmeval` (lm-eval 0.4 loads no plugin
    entry points), finds model type supremum and scores the task as `supremum lm-eval` does."""
    import subprocess
    import sys

    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "supremum.lmeval", "--model", "supremum", "--model_args",
                           "artifact=tiny-llama", "--tasks", "mc_tiny", "--include_path", str(tasks),
                           "--output_path", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (result,) = out.rglob("results_*.json")
    res = json.loads(result.read_text())["results"]["mc_tiny"]
    assert (res["acc,none"], res["acc_norm,none"]) == (0.75, 0.0)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed")
def test_cli_on_a_gguf_artifact_scores_like_its_pytorch_artifact(tasks, tmp_path):
    """`supremum lm-eval` on an artifact and on its f32 GGUF export (llama.cpp): the same
    log-likelihoods (to llama.cpp's float error) and accuracy, both runs in the frontier under
    their artifact ids."""
    from supremum.artifact import open_artifact, save_artifact
    from supremum.backends import load

    model, tok = tiny()
    save_artifact(model, tok, tmp_path / "lm", task="text-generation", label_names=None, base_model="tiny-llama",
                  config={}, artifact_id="tl")
    run_cli("compress", str(tmp_path / "lm"), "--method", "gguf", "quant=f32", "--output", str(tmp_path / "g"),
            check=True)
    pairs = [("Question: A cat says\nAnswer:", " meow"), ("Two plus", " two equals four")]
    lls = [[ll for ll, _ in SupremumLM(model=m, tokenizer=t).loglikelihood(requests("loglikelihood", *pairs),
                                                                            disable_tqdm=True)]
           for m, t in (load(open_artifact(tmp_path / "lm")), load(open_artifact(tmp_path / "g")))]
    np.testing.assert_allclose(lls[0], lls[1], atol=2e-3)
    got = {}
    for name in ("lm", "g"):
        proc = run_cli("lm-eval", str(tmp_path / name), "--tasks", "mc_tiny", "--include-path", str(tasks),
                       "--no-builtin-tasks", "--json", check=True)
        got[name] = json.loads(proc.stdout)["tasks"]["mc_tiny"]
    scores = {name: (m["accuracy"], m["acc_norm"]) for name, m in got.items()}
    assert scores == {"lm": (0.75, 0.0), "g": (0.75, 0.0)}
    assert (got["lm"]["backend"], got["g"]["backend"]) == ("pytorch", "llamacpp")
    front = json.loads(run_cli("frontier", "--data", "lm-eval:mc_tiny", "--json", check=True).stdout)
    assert sorted(v["artifact"] for v in front["frontier"] + front["dominated"]) == sorted(
        [got["lm"]["artifact"], got["g"]["artifact"]])


def test_no_git_error_outside_a_git_checkout(tasks, tmp_path):
    """lm-eval records the working directory's commit by running git with stderr on the terminal:
    outside a checkout every run printed "fatal: not a git repository"."""
    import subprocess
    import sys

    from lm_eval.loggers.utils import get_git_commit_hash

    from supremum.lmeval.gitinfo import git_commit_hash

    outside = tmp_path / "work"
    outside.mkdir()
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(tmp_path)}  # no checkout above it counts
    git = subprocess.run(["git", "describe", "--always"], cwd=outside, env=env, capture_output=True, text=True)
    assert git.returncode != 0 and "not a git repository" in git.stderr  # the condition is real
    proc = subprocess.run([sys.executable, "-m", "supremum", "lm-eval", "tiny-llama", "--tasks", "mc_tiny",
                           "--include-path", str(tasks), "--no-builtin-tasks", "--json"],
                          cwd=outside, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["tasks"]["mc_tiny"]["accuracy"] == 0.75
    assert [x for x in proc.stderr.splitlines() if "git" in x.lower()] == []
    # inside a checkout the recorded value is lm-eval's own
    assert git_commit_hash() == get_git_commit_hash()
