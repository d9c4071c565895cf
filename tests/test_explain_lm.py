"""Causal-LM attributions (captum's LLM attribution): occlusion equals the change in the
continuation's log-probability computed by hand; Integrated Gradients is complete for a one-token
continuation; both methods explain the same continuation; the CLI writes JSON, HTML and a store run."""

import json

import pytest
import torch
from conftest import run_cli

PROMPT = "to be or not to be"


@pytest.fixture(scope="module")
def lm():
    from supremum.models.loading import load_model

    torch.manual_seed(0)
    model, tok = load_model("tiny-llama", task="causal-lm")
    return model.eval(), tok


def _logp(model, prompt_ids: torch.Tensor, cont: list[int]) -> float:
    ids = torch.cat([prompt_ids, torch.tensor(cont)])[None]
    with torch.no_grad():
        logp = model(ids).logits.log_softmax(-1)[0]
    n = len(prompt_ids)
    return sum(float(logp[n - 1 + j, c]) for j, c in enumerate(cont))


def test_occlusion_is_the_drop_in_continuation_log_probability(lm):
    from supremum.explain.causal import baseline_id, explain_lm

    model, tok = lm
    r = explain_lm(model, tok, [PROMPT], ["occlusion"], target=None, max_new_tokens=4, steps=8)
    ex = r["examples"][0]
    cont = tok(ex["continuation"], add_special_tokens=False)["input_ids"]
    prompt = tok(PROMPT, return_tensors="pt")["input_ids"][0]
    full = _logp(model, prompt, cont)
    hand = []
    for i in range(len(prompt)):
        ablated = prompt.clone()
        ablated[i] = baseline_id(tok)
        hand.append(full - _logp(model, ablated, cont))
    assert ex["methods"]["occlusion"]["sequence"] == pytest.approx(hand, abs=1e-4)
    assert len(ex["methods"]["occlusion"]["per_token"]) == len(cont)


def test_integrated_gradients_is_complete_for_one_token(lm):
    from supremum.explain.causal import baseline_id, explain_lm

    model, tok = lm
    r = explain_lm(model, tok, [PROMPT], ["integrated-gradients"], target="e", max_new_tokens=1, steps=200)
    seq = r["examples"][0]["methods"]["integrated-gradients"]["sequence"]
    prompt = tok(PROMPT, return_tensors="pt")["input_ids"][0]
    cont = tok("e", add_special_tokens=False)["input_ids"]
    gap = _logp(model, prompt, cont) - _logp(model, torch.full_like(prompt, baseline_id(tok)), cont)
    assert sum(seq) == pytest.approx(gap, abs=0.02 * max(1.0, abs(gap)))


def test_methods_explain_the_same_greedy_continuation(lm):
    from supremum.explain.causal import explain_lm

    model, tok = lm
    r = explain_lm(model, tok, [PROMPT], ["occlusion", "integrated-gradients"], target=None, max_new_tokens=3,
                   steps=8)
    ex = r["examples"][0]
    enc = tok(PROMPT, return_tensors="pt")
    greedy = model.generate(**enc, max_new_tokens=3, do_sample=False, pad_token_id=tok.eos_token_id)
    assert ex["continuation"] == tok.decode(greedy[0, enc["input_ids"].shape[1]:])
    a, b = ex["methods"]["occlusion"], ex["methods"]["integrated-gradients"]
    assert a["target_tokens"] == b["target_tokens"] and a["prompt_tokens"] == b["prompt_tokens"]


def test_cli_explains_a_causal_lm_artifact(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("to be or not to be, that is the question.\n" * 40, encoding="utf-8")
    run_cli("finetune", "--model", "tiny-llama", "--data", str(corpus), "--max-steps", "2", "--output",
            str(tmp_path / "lm"), "--no-progress", check=True)
    r = run_cli("explain", str(tmp_path / "lm"), "--text", "to be", "--max-new-tokens", "2", "--methods",
                "occlusion", "--output", str(tmp_path / "x"), "--json", check=True)
    res = json.loads(r.stdout)
    assert res["methods"] == ["occlusion"] and len(res["examples"]) == 1
    assert (tmp_path / "x" / "explanations.json").exists() and (tmp_path / "x" / "explanations.html").exists()
    r = run_cli("runs", "--json")
    assert any(x["kind"] == "explain-lm" and x["status"] == "finished" for x in json.loads(r.stdout))
    bad = run_cli("explain", str(tmp_path / "lm"), "--text", "to be", "--methods", "attention-rollout")
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "error: method(s) attention-rollout do not apply to a causal LM (use --methods "
        "occlusion,integrated-gradients)")
    bad = run_cli("explain", str(tmp_path / "lm"), "--data", str(corpus))
    assert bad.returncode == 2 and "a causal LM is explained on --text prompts" in bad.stderr
