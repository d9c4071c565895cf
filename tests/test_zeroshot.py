"""Zero-shot and in-context classification with a causal LM (supremum.evaluate.zeroshot): the
verbalizer scores are the continuation log-likelihoods computed by hand from the model's forward
pass; k-shot prompts hold training examples only, different per seed; bad input is one line."""

import importlib.util

import numpy as np
import pytest
import torch
from conftest import run_cli, write_csv

from supremum.config import DataConfig
from supremum.errors import UserError
from supremum.evaluate import loglik
from supremum.evaluate.zeroshot import ZeroShotConfig, draw_shots, predictions, prompt, zeroshot
from supremum.models import load_model
from supremum.store import Store


@pytest.fixture(scope="module")
def tiny():
    model, tok = load_model("tiny-llama", "causal-lm")
    return model.eval(), tok


def hand_loglik(model, tok, context: str, continuation: str) -> float:
    """Sum of log p(continuation token | everything before it), from one unpadded forward pass.
    The byte tokenizer splits context + continuation exactly at the boundary."""
    ctx = tok(context, add_special_tokens=False)["input_ids"]
    ids = tok(context + continuation, add_special_tokens=False)["input_ids"]
    assert ids[:len(ctx)] == ctx and len(ids) > len(ctx)
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
    return sum(float(logp[j - 1, ids[j]]) for j in range(len(ctx), len(ids)))


PAIRS = [("Review: great good fine\nSentiment:", " positive"),
         ("Review: awful\nSentiment:", " neg"),
         ("Review: lovely lovely lovely superb 12\nSentiment:", " pos"),
         ("Review: dull\nSentiment:", " terrible and boring")]


def test_scorer_equals_hand_log_likelihoods(tiny):
    """Batched (right-padded, several lengths in one batch) and unbatched scores both equal the
    hand computation; continuations are several tokens long (one per byte)."""
    model, tok = tiny
    hand = np.array([hand_loglik(model, tok, c, x) for c, x in PAIRS])
    for batch in (1, 4):
        got, truncated = loglik.loglikelihoods(model, tok, PAIRS, batch_size=batch)
        np.testing.assert_allclose(got, hand, atol=1e-5, rtol=0)
        assert truncated == 0
    assert len(set(np.round(hand, 3))) == len(hand)  # distinct values: an off-by-one would show
    assert hand[3] < hand[1]  # a longer continuation sums more negative log-probs


DEMOS = "Review: fine\nSentiment: pos\n\nReview: bad film\nSentiment: neg\n\n"


def test_shared_prefix_scores_equal_the_full_scores_and_feed_fewer_tokens(tiny):
    """k-shot prompts start with the same demonstrations: run once (KV cache copied into each
    batch), the scores equal scoring every prompt whole, for several lengths in one batch and a
    context that is the shared part alone (scored whole)."""
    model, tok = tiny
    pairs = [(DEMOS + c, x) for c, x in PAIRS] + [(DEMOS.rstrip("\n"), " pos")]
    fed = []
    hook = model.register_forward_pre_hook(lambda m, a, kw: fed.append(kw["input_ids"].numel()), with_kwargs=True)
    try:
        whole, _ = loglik.loglikelihoods(model, tok, pairs, batch_size=3)
        tokens_whole, fed[:] = sum(fed), []
        for batch in (1, 3):
            got, truncated = loglik.loglikelihoods(model, tok, pairs, batch_size=batch, shared_prefix=True)
            np.testing.assert_allclose(got, whole, atol=1e-4, rtol=0)
            assert truncated == 0
        new_tokens = sum(fed) / 2  # what each pass fed (padding included): the prefix once, then the tails
    finally:
        hook.remove()
    np.testing.assert_allclose(whole, [hand_loglik(model, tok, c, x) for c, x in pairs], atol=1e-5, rtol=0)
    prefix = len(tok(DEMOS.rstrip("\n"), add_special_tokens=False)["input_ids"])
    assert new_tokens < tokens_whole - 2 * prefix  # the demonstrations were not fed again for each prompt


@pytest.mark.parametrize("shared", [False, True])
def test_labels_after_the_same_prompt_share_one_forward_pass(tiny, shared):
    """One-token verbalizers after the same prompt have the same model input (the prompt): one row
    each prompt, not one each label, and every score still equals the hand computation."""
    model, tok = tiny
    prompts = [(DEMOS if shared else "") + c for c, _ in PAIRS]
    pairs = [(c, w) for c in prompts for w in ("+", "-")]
    assert all(len(loglik.encode_pair(tok, c, w)[1]) == 1 for c, w in pairs)  # one byte, one token
    rows = []
    count = lambda m, a, kw: rows.append(kw["input_ids"].shape[0])  # noqa: E731
    hook = model.register_forward_pre_hook(count, with_kwargs=True)
    try:
        got, _ = loglik.loglikelihoods(model, tok, pairs, batch_size=16, shared_prefix=shared)
    finally:
        hook.remove()
    assert sum(rows) == len(prompts) + shared  # (the shared prefix runs once, alone)
    np.testing.assert_allclose(got, [hand_loglik(model, tok, c, w) for c, w in pairs], atol=1e-4, rtol=0)


def test_a_context_not_starting_with_the_prefix_is_scored_whole(tiny):
    model, tok = tiny
    pairs = [(DEMOS + c, x) for c, x in PAIRS[:2]] + [("Other: x\nSentiment:", " pos")]
    encoded = [loglik.encode_pair(tok, c, x) for c, x in pairs]
    prefix = tok(DEMOS, add_special_tokens=False)["input_ids"]
    got = loglik.score_after_prefix(model, prefix, encoded, batch_size=2, pad=tok.pad_token_id)
    want = loglik.score_tokens(model, encoded, batch_size=2, pad=tok.pad_token_id)
    np.testing.assert_allclose([s for s, _ in got], [s for s, _ in want], atol=1e-4, rtol=0)
    assert [g for _, g in got] == [g for _, g in want]


def test_common_prefix():
    assert loglik.common_prefix([[1, 2, 3], [1, 2, 4, 5], [1, 2]]) == [1, 2]
    assert loglik.common_prefix([[1, 2], [3]]) == [] and loglik.common_prefix([]) == []
    assert loglik.common_prefix([[7, 8, 9]]) == [7, 8, 9]


def test_trailing_space_moves_to_the_continuation(tiny):
    """lm-eval's _encode_pair: a context ending in a space scores as if the space began the
    continuation."""
    model, tok = tiny
    a, _ = loglik.loglikelihoods(model, tok, [("Review: fine\nSentiment: ", "pos")])
    assert a[0] == pytest.approx(hand_loglik(model, tok, "Review: fine\nSentiment:", " pos"), abs=1e-5)


def test_left_truncation_keeps_the_continuation(tiny):
    """A context longer than max_length loses tokens at the left, as lm-eval feeds
    (context + continuation)[-(max_length + 1):][:-1]; the continuation is scored whole."""
    model, tok = tiny
    context, cont = "x" * 40 + "Review: good\nSentiment:", " positive"
    got, truncated = loglik.loglikelihoods(model, tok, [(context, cont)], max_length=20)
    assert truncated == 1
    assert got[0] == pytest.approx(hand_loglik(model, tok, context[-(21 - len(cont)):], cont), abs=1e-5)


def _rows(prefix: str, n: int, seed: int) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    good, bad = ["great", "good", "lovely"], ["bad", "awful", "dull"]
    out = []
    for i in range(n):
        label = "pos" if i % 3 else "neg"  # 2:1, so balanced and random sampling differ
        words = rng.choice(good if label == "pos" else bad, 2)
        out.append((f"{prefix}{i} {' '.join(words)}", label))
    return out


@pytest.fixture
def splits(tmp_path):
    d = tmp_path / "reviews"
    d.mkdir()
    write_csv(d / "train.csv", _rows("train", 30, 0))
    write_csv(d / "dev.csv", _rows("dev", 8, 1))
    write_csv(d / "test.csv", _rows("test", 8, 2))
    return d


def cfg(data, **kw) -> ZeroShotConfig:
    return ZeroShotConfig(**{"model": "tiny-llama", "data": DataConfig(path=str(data)), "speed": False, **kw})


def test_predictions_are_the_argmax_of_hand_scores(tiny, splits, tmp_path):
    """accuracy / acc_norm of a run equal those of predictions made from hand-computed
    log-likelihoods (acc_norm: divided by the verbalizer's characters, as lm-eval does)."""
    model, tok = tiny
    c = cfg(splits, shots=[0], verbalizers={"pos": "great", "neg": "terrible"})
    res = zeroshot(c, store=Store(tmp_path / "store"))
    texts = [t for t, _ in _rows("test", 8, 2)]
    gold = np.array([0 if lab == "neg" else 1 for _, lab in _rows("test", 8, 2)])  # labels sort: neg, pos
    words = ["terrible", "great"]
    hand = np.array([[hand_loglik(model, tok, f"Review: {t}\nSentiment:", " " + w) for w in words] for t in texts])
    acc = float((hand.argmax(-1) == gold).mean())
    acc_norm = float(((hand / np.array([8.0, 5.0])).argmax(-1) == gold).mean())
    one = res["results"][0]
    assert one["accuracy"] == {"mean": pytest.approx(acc), "sd": 0.0, "n": 1}
    assert one["acc_norm"]["mean"] == pytest.approx(acc_norm)
    np.testing.assert_array_equal(predictions(hand, words)["acc_norm"], (hand / [8.0, 5.0]).argmax(-1))
    f1_pos = 2 * (5 / 8) / (1 + 5 / 8)  # precision 5/8, recall 1; neg's F1 is 0
    assert res["majority"] == {"label": "pos", "accuracy": 5 / 8, "macro_f1": pytest.approx(f1_pos / 2)}


def test_kshot_prompts_hold_train_examples_only_and_differ_per_seed(tiny, splits, tmp_path, monkeypatch):
    """The prompts actually scored: k demonstrations per prompt, all from train (never dev/test),
    each followed by its own label's verbalizer, balanced over the classes, the same for every
    text of a seed and different between seeds."""
    seen: list[tuple[str, str]] = []
    real = loglik.loglikelihoods

    def spy(model, tok, pairs, *a, **kw):
        seen.extend(pairs)
        return real(model, tok, pairs, *a, **kw)

    monkeypatch.setattr(loglik, "loglikelihoods", spy)
    train = dict(_rows("train", 30, 0))
    held_out = {t for t, _ in _rows("dev", 8, 1) + _rows("test", 8, 2)}
    c = cfg(splits, shots=[4], seeds=[0, 1, 2], verbalizers={"pos": "great", "neg": "bad"})
    zeroshot(c, store=Store(tmp_path / "store"))
    assert len(seen) == 3 * 8 * 2  # seeds x test texts x labels
    demo_sets = []
    for seed in range(3):
        contexts = {ctx for ctx, _ in seen[seed * 16:(seed + 1) * 16]}
        demos = {ctx.split("\n\n")[:-1] and tuple(ctx.split("\n\n")[:-1]) for ctx in contexts}
        assert len(demos) == 1  # one set of examples per seed, shared by every text
        shots = next(iter(demos))
        assert len(shots) == 4
        labels = []
        for demo in shots:
            text, verbalizer = demo.removeprefix("Review: ").split("\nSentiment: ")
            assert text in train and text not in held_out
            assert verbalizer == {"pos": "great", "neg": "bad"}[train[text]]
            labels.append(train[text])
        assert sorted(labels) == ["neg", "neg", "pos", "pos"]  # balanced
        assert all(ctx.split("\n\n")[-1].startswith("Review: test") for ctx in contexts)
        demo_sets.append(frozenset(shots))
    assert len(set(demo_sets)) == 3


def test_draw_shots_balanced_random_and_pool_limit():
    labels = np.array([0] * 10 + [1] * 3)
    for seed in range(5):
        bal = draw_shots(labels, 8, seed, "balanced")
        assert len(set(bal)) == 8 and sorted(labels[bal].tolist()) == [0] * 5 + [1] * 3  # class 1 runs out
        assert sorted(labels[draw_shots(labels, 4, seed, "balanced")].tolist()) == [0, 0, 1, 1]
    assert draw_shots(labels, 6, 0, "random") == draw_shots(labels, 6, 0, "random")
    assert draw_shots(labels, 6, 0, "random") != draw_shots(labels, 6, 1, "random")
    with pytest.raises(UserError, match="--shots 14 is larger than the 13 labelled training examples"):
        draw_shots(labels, 14, 0, "balanced")


def test_prompt_format_is_lm_eval_fewshot_context(splits):
    c = cfg(splits, template="Q: {text} {braces}\nA:")
    assert prompt(c, "x", [("a", "yes"), ("b", "no")]) == ("Q: a {braces}\nA: yes\n\nQ: b {braces}\nA: no\n\n"
                                                          "Q: x {braces}\nA:")


def test_run_enters_the_frontier_with_its_cost(tiny, splits, tmp_path):
    from supremum.frontier import variants

    store = Store(tmp_path / "store")
    res = zeroshot(cfg(splits, shots=[0, 2], seeds=[0, 1], speed=True, warmup=0, repeats=3), store=store)
    rows = {v.artifact: v for v in variants(store)}
    assert set(rows) == {"tiny-llama 0-shot (pytorch)", "tiny-llama 2-shot (pytorch)"}
    two = rows["tiny-llama 2-shot (pytorch)"]
    assert two.metrics["accuracy"] == pytest.approx(res["results"][1]["accuracy"]["mean"])
    assert two.split == "test" and two.costs["latency_b1"] > 0 and two.costs["params"] > 0
    assert res["results"][1]["cost"]["examples_per_s"] > 0
    assert [r["kind"] for r in store.runs()] == ["zeroshot", "zeroshot"]


@pytest.mark.parametrize(("args", "line"), [
    (["--verbalizers", "pos=great,bad=terrible"],
     "error: verbalizer for unknown label 'bad' (the labels are: neg, pos)"),
    (["--template", "Review: {txt}"],
     "error: the template 'Review: {txt}' has no {text} placeholder "
     "(e.g. --template 'Review: {text}\\nSentiment:')"),
    (["--shots", "0,31"],
     "error: --shots 31 is larger than the 30 labelled training examples (use at most 30 shots)"),
    (["--split", "train", "--shots", "2"],
     "error: in-context examples are drawn from train, so train cannot be the scored split "
     "(pass --split dev or --split test)"),
    (["--verbalizers", "pos"],
     "error: --verbalizers pos: 'pos' is not LABEL=WORD (e.g. pos=great,neg=terrible) "
     "(see `supremum zeroshot --help`)"),
])
def test_bad_input_is_one_line_exit_2(splits, args, line):
    proc = run_cli("zeroshot", "--model", "tiny-llama", "--data", str(splits), *args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [line]


@pytest.mark.bench_smoke
def test_bench_zeroshot_sst2_quick(tmp_path):
    """bench/zeroshot_sst2.py --quick: tiny-llama on tiny SST-2-shaped data, 0 and 2 shots."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "out.json"
    env = {**os.environ, "SUPREMUM_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    env.pop("SUPREMUM_DATA", None)
    script = Path(__file__).parents[1] / "bench" / "zeroshot_sst2.py"
    kept = script.parent / "results" / "zeroshot_sst2.json"
    before = kept.read_bytes() if kept.exists() else None
    p = subprocess.run([sys.executable, str(script), "--quick", "--out", str(out)], env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(out.read_text())
    assert [r["shots"] for r in res["results"]] == [0, 2] and res["examples"] == 16
    assert [r["accuracy"]["n"] for r in res["results"]] == [1, 2]
    assert res["verbalizers"] == {"0": "negative", "1": "positive"} and 0 <= res["majority"]["accuracy"] <= 1
    assert (kept.read_bytes() if kept.exists() else None) == before  # --quick leaves results/ alone


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed")
def test_gguf_artifact_scores_like_its_pytorch_parent_in_llama_cpp(splits, tmp_path, monkeypatch):
    """A causal-LM artifact and its f32 GGUF export (run by llama.cpp) give the same verbalizer
    scores: the llama.cpp path of the scorer (one unpadded row at a time) is the same computation."""
    from supremum.train.config import FinetuneConfig
    from supremum.train.finetune import finetune

    monkeypatch.setenv("SUPREMUM_HOME", str(tmp_path / "home"))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"Review: {t}\nSentiment: {lab}" for t, lab in _rows("c", 60, 3)) + "\n")
    ft = FinetuneConfig(model={"name": "tiny-llama"}, data={"path": str(corpus), "max_length": 32},
                        train={"max_steps": 3, "batch_size": 8, "lr": 3e-3}, output=str(tmp_path / "ft"))
    art = finetune(ft, progress=False).artifact
    assert run_cli("compress", str(art.path), "--method", "gguf", "--output", str(tmp_path / "gguf"),
                   "quant=f32").returncode == 0
    res = {}
    real = loglik.loglikelihoods
    for name in (art.path, tmp_path / "gguf"):
        seen = []

        def spy(model, tok, pairs, *a, _seen=seen, **kw):
            out = real(model, tok, pairs, *a, **kw)
            _seen.append(out[0])
            return out

        monkeypatch.setattr(loglik, "loglikelihoods", spy)
        res[name] = (zeroshot(cfg(splits, model=str(name), shots=[2], seeds=[0]), store=Store(tmp_path / "s")),
                     np.concatenate(seen))
    (a, lls_a), (b, lls_b) = res.values()
    np.testing.assert_allclose(lls_a, lls_b, atol=2e-3)
    assert a["results"][0]["accuracy"] == b["results"][0]["accuracy"]
    assert a["results"][0]["accuracy"]["sd"] is None  # one seed of k > 0: no spread measured, not 0


def test_an_encoder_is_refused_not_scored(splits):
    proc = run_cli("zeroshot", "--model", "tiny-bert", "--data", str(splits), "--no-speed", "--limit", "4")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: tiny-bert is an encoder (bert), not a causal language model: it cannot score a continuation "
        "(give a causal LM, e.g. smollm2-135m or tiny-llama)"]
