"""Causal language models on tiny-llama: data packing and masking, fine-tuning, perplexity
against a hand computation, generation cost, compression (PyTorch and llama.cpp)."""

import importlib.util
import json
import math
import os
import random

import pytest
import torch
import torch.nn.functional as F
from conftest import run_cli

from supremum.artifact import load_artifact_model, open_artifact
from supremum.config import DataConfig
from supremum.errors import UserError
from supremum.lm.data import IGNORE, encode_instruction, is_lm_data, load_lm_data, pack, stream, training_split
from supremum.lm.metrics import perplexity, token_nll, windows
from supremum.machine import BUSY_MARGIN, SPREAD_LIMIT
from supremum.models import load_model
from supremum.train.config import FinetuneConfig

WORDS = "the king shall speak of love and war to thee my lord".split()
HAS_LLAMA_CPP = importlib.util.find_spec("llama_cpp") is not None


@pytest.fixture
def corpus(tmp_path):
    rng = random.Random(0)
    lines = [" ".join(rng.choice(WORDS) for _ in range(6)) + "." for _ in range(300)]
    p = tmp_path / "corpus.txt"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


@pytest.fixture
def instructions(tmp_path):
    p = tmp_path / "inst.jsonl"
    with open(p, "w") as f:
        for i in range(40):
            f.write(json.dumps({"prompt": f"add {i} and 1", "response": str(i + 1)}) + "\n")
    return p


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-llama", "causal-lm")


def test_task_detection(corpus, instructions, csv_data, tmp_path):
    assert is_lm_data(DataConfig(path=str(corpus)))
    assert is_lm_data(DataConfig(path=str(instructions)))
    assert not is_lm_data(DataConfig(path=str(csv_data)))
    labeled = tmp_path / "labeled.jsonl"
    labeled.write_text('{"text": "a", "label": "x"}\n')
    assert not is_lm_data(DataConfig(path=str(labeled)))
    texts = tmp_path / "texts.jsonl"
    texts.write_text('{"text": "a b"}\n{"text": "c d"}\n')
    assert is_lm_data(DataConfig(path=str(texts)))


def test_contiguous_splits_cut_at_lines(corpus):
    data = load_lm_data(DataConfig(path=str(corpus), dev_fraction=0.1, test_fraction=0.2))
    text = corpus.read_text()
    parts = [data.records[s][0] for s in ("train", "dev", "test")]
    assert "".join(parts) == text  # contiguous, nothing lost or repeated
    assert all(p.endswith("\n") for p in parts)  # cut at line breaks
    assert abs(len(parts[2]) / len(text) - 0.2) < 0.02 and abs(len(parts[1]) / len(text) - 0.1) < 0.02


def test_packing_positions(tiny):
    _, tok = tiny
    ids = stream(tok, ["ab", "cde"])
    a, b, c, d, e = (tok.convert_tokens_to_ids(x) for x in "abcde")
    assert ids == [a, b, tok.eos_token_id, c, d, e, tok.eos_token_id]
    split = pack(ids, 3)
    assert split.ids == [[a, b, tok.eos_token_id], [c, d, e]]  # remainder (one token) dropped
    assert split.labels == split.ids


def test_instruction_masking_without_template(tiny):
    _, tok = tiny
    piece = lambda t: tok(t, add_special_tokens=False)["input_ids"]  # noqa: E731
    rec = {"messages": [{"role": "user", "content": "add 1"}, {"role": "assistant", "content": "2"}]}
    ids, labels = encode_instruction(tok, rec, 128)
    prompt = piece("user: ") + piece("add 1") + piece("\n") + piece("assistant: ")
    answer = piece("2") + [tok.eos_token_id]
    assert ids == prompt + answer
    assert labels == [IGNORE] * len(prompt) + answer


def test_instruction_masking_with_chat_template():
    _, tok = load_model("tiny-llama", "causal-lm")  # its own tokenizer: the template is set on it
    tok.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</s>{% endfor %}"
                         "{% if add_generation_prompt %}<assistant>{% endif %}")
    rec = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
                        {"role": "user", "content": "ok"}, {"role": "assistant", "content": "no"}]}
    ids, labels = encode_instruction(tok, rec, 256)
    kept = tok.decode([i for i, lab in zip(ids, labels, strict=True) if lab != IGNORE])
    assert kept == "yo</s>no</s>"  # both answers and their end markers, nothing of the prompts
    assert tok.decode(ids) == "<user>hi</s><assistant>yo</s><user>ok</s><assistant>no</s>"


def test_instruction_errors(tmp_path, tiny):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "user", "content": "x"}]}) + "\n")
    with pytest.raises(UserError, match="assistant"):
        load_lm_data(DataConfig(path=str(bad)))
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    with pytest.raises(UserError, match="empty"):
        load_lm_data(DataConfig(path=str(empty)))


def test_long_conversations_are_said_dropped_or_cut(tiny, capsys):
    from supremum.lm.data import LMData

    _, tok = tiny
    conv = lambda user, answer: {"messages": [{"role": "user", "content": user},  # noqa: E731
                                              {"role": "assistant", "content": answer}]}
    rows = [conv("hi", "ok"),  # short: kept whole
            conv("hi", "word " * 40),  # the answer starts within the window: cut
            conv("word " * 40, "ok")]  # the prompt fills the window: dropped
    n = len(encode_instruction(tok, rows[0], 10**6)[0]) + 2  # the short one fits
    split = training_split(tok, LMData("instruction", {"train": rows}), "train", n)
    assert len(split.ids) == 2 and all(len(i) <= n for i in split.ids)
    assert capsys.readouterr().err == (f"data: train: 2 of 3 conversations are longer than max_length={n} tokens: "
                                       "1 dropped (no answer token within it), 1 cut (raise --max-length to keep "
                                       "them whole)\n")


def test_windows_score_every_token_once():
    for length, window, stride in [(10, 4, 2), (100, 16, 16), (7, 32, 8), (33, 8, 3)]:
        spans = windows(length, window, stride)
        scored = [t for _, e, first in spans for t in range(first, e)]
        assert scored == list(range(1, length))
        assert all(e - s <= window and s < first for s, e, first in spans)  # a predecessor in the window


def test_perplexity_matches_hand_computation(tiny):
    model, _ = tiny
    model.eval()
    ids = torch.randint(3, 200, (40,), generator=torch.Generator().manual_seed(0)).tolist()
    with torch.no_grad():
        logp = F.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
    full = -sum(logp[t - 1, ids[t]].item() for t in range(1, len(ids)))
    res = perplexity(model, ids, window=64, stride=32)
    assert res["tokens"] == 39
    assert res["perplexity"] == pytest.approx(math.exp(full / 39), rel=1e-5)
    # With a stride, each token's context starts at its window's start: computed one by one.
    res = perplexity(model, ids, window=8, stride=4, batch_size=3)
    hand = 0.0
    for s, e, first in windows(len(ids), 8, 4):
        with torch.no_grad():
            lp = F.log_softmax(model(input_ids=torch.tensor([ids[s:e]])).logits[0].float(), -1)
        hand -= sum(lp[t - s - 1, ids[t]].item() for t in range(first, e))
    assert res["nll"] == pytest.approx(hand, rel=1e-5)
    # --stride equal to --window: every token is still scored (a window starting at a token cannot
    # predict it, so the stride used is window - 1; it used to drop one token per window).
    res = perplexity(model, ids, window=8, stride=8)
    assert (res["tokens"], res["stride"]) == (39, 7)


def test_token_nll_ignores_masked():
    logits = torch.randn(1, 4, 5)
    labels = torch.tensor([[IGNORE, 1, IGNORE, 3]])
    total, count = token_nll(logits, labels)
    want = -(F.log_softmax(logits[0, 0], -1)[1] + F.log_softmax(logits[0, 2], -1)[3])
    assert count.item() == 2 and total.item() == pytest.approx(want.item(), rel=1e-6)


def _finetune(data, out, method="full", **train):
    from supremum.train.finetune import finetune

    cfg = FinetuneConfig(model={"name": "tiny-llama"}, data={"path": str(data), "max_length": 32},
                         method={"name": method},
                         train={"epochs": 2, "batch_size": 8, "lr": 3e-3, "seed": 0, **train}, output=str(out))
    return finetune(cfg, progress=False)


# LoRA leaves the (tied) embeddings and norms of the random model alone, so it gains less.
@pytest.mark.parametrize("method,lr,gain", [("full", 3e-3, 0.5), ("lora", 3e-2, 0.15)])
def test_finetune_lowers_dev_loss_and_reloads(corpus, tmp_path, method, lr, gain):
    res = _finetune(corpus, tmp_path / "a", method, lr=lr)
    art = res.artifact
    assert art.task == "text-generation" and art.label_names == []
    evals = res.metrics["evals"]
    assert evals and "dev_loss" in evals[0]
    model, tok = load_model("tiny-llama", "causal-lm")
    data = load_lm_data(DataConfig(path=str(corpus), max_length=32))
    from supremum.lm.metrics import dev_scorer

    before = -dev_scorer()(model, training_split(tok, data, "dev", 32))[0]
    assert res.metrics["dev_loss"] < before - gain  # learned the corpus' words
    m1, _ = load_artifact_model(art)
    m2, _ = load_artifact_model(open_artifact(art.path))
    x = torch.tensor([tok("the king shall")["input_ids"]])
    with torch.no_grad():
        assert torch.equal(m1(input_ids=x).logits, m2(input_ids=x).logits)


def test_instruction_finetune(instructions, tmp_path):
    res = _finetune(instructions, tmp_path / "i", "full", epochs=1)
    assert res.artifact.task == "text-generation" and res.metrics["steps"] > 0
    assert res.data_info["kind"] == "instruction"


@pytest.fixture(scope="module")
def lm_artifact(tmp_path_factory):
    d = tmp_path_factory.mktemp("lm")
    rng = random.Random(0)
    corpus = d / "corpus.txt"
    corpus.write_text("\n".join(" ".join(rng.choice(WORDS) for _ in range(6)) + "." for _ in range(300)) + "\n")
    import os

    os.environ["SUPREMUM_HOME"] = str(d / "home")
    res = _finetune(corpus, d / "ft", "full")
    return res.artifact, corpus


def test_eval_cli_artifact_and_base_model(lm_artifact):
    art, corpus = lm_artifact
    proc = run_cli("eval", str(art.path), "--split", "test", "--new-tokens", "8", "--json", check=True)
    m = json.loads(proc.stdout)
    assert m["task"] == "text-generation" and m["perplexity"] > 1
    g = m["cost"]["generation"]
    assert g["decode_tokens_per_s"] > 0 and g["ttft_ms"] > 0 and g["new_tokens"] == 8
    load = g["load"]
    assert load["cores"] == os.cpu_count() and load["busy"] == (
        load["load_1m"] > os.cpu_count() + BUSY_MARGIN or load["p95_over_median"] > SPREAD_LIMIT)
    assert len(m["samples"]) == 3 and all("completion" in s for s in m["samples"])
    assert m["bits_per_byte"] == pytest.approx(m["perplexity_detail"]["nll"] / math.log(2)
                                               / m["perplexity_detail"]["bytes"])
    base = json.loads(run_cli("eval", "tiny-llama", "--data", str(corpus), "--split", "test", "--max-length",
                              "32", "--new-tokens", "4", "--json", check=True).stdout)
    assert base["model"] == "tiny-llama" and base["perplexity"] > m["perplexity"]  # fine-tuning helped
    proc = run_cli("eval", "tiny-llama", "--split", "test")
    assert proc.returncode == 2 and "--data" in proc.stderr


@pytest.mark.parametrize("method,options", [("int8-dynamic", []), ("int8-weight", []),
                                            ("int4-weight", ["group_size=32"])])
def test_quantized_lm_perplexity_close(lm_artifact, tmp_path, method, options):
    art, corpus = lm_artifact
    out = tmp_path / method
    run_cli("compress", str(art.path), "--method", method, "--output", str(out), *options, check=True)
    ref, tok = load_artifact_model(art)
    q, _ = load_artifact_model(open_artifact(out))
    ids = stream(tok, load_lm_data(DataConfig(path=str(corpus))).records["test"])[:200]
    p_ref, p_q = perplexity(ref, ids, 32, 16)["perplexity"], perplexity(q, ids, 32, 16)["perplexity"]
    assert abs(p_q / p_ref - 1) < 0.05


def test_drop_layers_then_distill_lm(lm_artifact, tmp_path):
    art, corpus = lm_artifact
    dropped = tmp_path / "drop"
    run_cli("compress", str(art.path), "--method", "drop-layers", "--output", str(dropped), "num_layers=1",
            check=True)
    student = tmp_path / "student"
    run_cli("compress", str(dropped), "--method", "distill", "--output", str(student), "epochs=2", "lr=3e-3",
            "batch_size=8", check=True)
    s = open_artifact(student)
    rep = s.manifest.compression[-1].report
    assert rep["teacher"] == art.id and rep["evals"] and "dev_loss" in rep["evals"][0]
    model, tok = load_artifact_model(s)
    assert len(model.model.layers) == 1
    ids = stream(tok, load_lm_data(DataConfig(path=str(corpus))).records["test"])[:200]
    before, _ = load_artifact_model(open_artifact(dropped))
    assert perplexity(model, ids, 32, 16)["perplexity"] < perplexity(before, ids, 32, 16)["perplexity"]


def test_lm_sensitivity(lm_artifact):
    art, _ = lm_artifact
    res = json.loads(run_cli("sensitivity", str(art.path), "--schemes", "int8", "--json", check=True).stdout)
    assert "baseline_loss" in res and len(res["layers"]) == 14  # 2 layers x 7 linears, head excluded
    assert all(r["int8"] is not None for r in res["layers"])


@pytest.mark.skipif(not HAS_LLAMA_CPP, reason="llama-cpp-python is not installed (the `llama` extra)")
def test_gguf_export_matches_pytorch_and_runs_on_llama_cpp(lm_artifact, tmp_path):
    art, corpus = lm_artifact
    ref, tok = load_artifact_model(art)
    ids = stream(tok, load_lm_data(DataConfig(path=str(corpus))).records["test"])[:200]
    x = torch.tensor([ids[:64]])
    with torch.no_grad():
        want = ref(input_ids=x).logits
    results = {}
    for quant in ("f32", "q8_0"):
        out = tmp_path / quant
        run_cli("compress", str(art.path), "--method", "gguf", "--output", str(out), f"quant={quant}", check=True)
        a = open_artifact(out)
        assert a.manifest.backend == "llamacpp"
        model, _ = load_artifact_model(a)
        got = model(input_ids=x).logits
        results[quant] = (float((got - want).abs().max()), perplexity(model, ids, 32, 16)["perplexity"])
        from supremum.lm.generation import greedy

        assert greedy(model, ids[:16], 6) == greedy(ref, ids[:16], 6) or quant != "f32"
    assert results["f32"][0] < 1e-3  # same weights, same math: the export layout is right
    p_ref = perplexity(ref, ids, 32, 16)["perplexity"]
    assert results["f32"][1] == pytest.approx(p_ref, rel=1e-3)
    assert abs(results["q8_0"][1] / p_ref - 1) < 0.05
    m = json.loads(run_cli("eval", str(tmp_path / "q8_0"), "--split", "test", "--new-tokens", "8", "--json",
                           check=True).stdout)
    assert m["runtime"]["backend"] == "llamacpp" and m["cost"]["generation"]["decode_tokens_per_s"] > 0
    proc = run_cli("compress", str(tmp_path / "q8_0"), "--method", "int8-dynamic")
    assert proc.returncode == 2 and "llama.cpp" in proc.stderr


def test_bad_lm_options(corpus, tmp_path):
    proc = run_cli("finetune", "--model", "tiny-llama", "--data", str(corpus), "train.label_smoothing=0.1",
                   "--output", str(tmp_path / "x"))
    assert proc.returncode == 2 and "classification only" in proc.stderr
    # an encoder on a corpus: refused, not trained into a next-token model that is noise
    table = tmp_path / "excel.txt"  # Excel's "Unicode text": a tab-separated table the suffix hides
    table.write_text("Text\tLabel\n" + "".join(f"a fine film {i}\tpos\n" for i in range(40)), encoding="utf-8")
    proc = run_cli("finetune", "--model", "tiny-bert", "--data", str(table), "--max-steps", "2",
                   "--output", str(tmp_path / "enc"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (f"model 'tiny-bert' is an encoder (bert), and {table} was read as text for a causal language model"
            in proc.stderr) and "name it .tsv" in proc.stderr
    assert not (tmp_path / "enc").exists()


def test_lm_frontier_pick_and_report(lm_artifact, tmp_path):
    art, corpus = lm_artifact
    q = tmp_path / "q8"
    run_cli("compress", str(art.path), "--method", "int8-dynamic", "--output", str(q), check=True)
    for ref in (str(art.path), str(q)):
        run_cli("eval", ref, "--split", "test", "--new-tokens", "8", check=True)
    run_cli("eval", "tiny-llama", "--data", str(corpus), "--split", "test", "--new-tokens", "8", "--window", "64",
            check=True)  # another perplexity window than the artifacts' (32): not comparable
    run_cli("eval", "tiny-llama", "--data", str(corpus), "--split", "test", "--new-tokens", "8", "--max-length",
            "32", check=True)
    res = json.loads(run_cli("frontier", "--json", check=True).stdout)
    assert res["metric"] == "perplexity" and res["cost"] == "decode_ms" and res["task"] == "text-generation"
    rows = res["frontier"] + res["dominated"]
    assert {r["artifact"] for r in rows} == {art.id, open_artifact(q).id, "tiny-llama (pytorch)"}
    assert all(r["costs"]["decode_ms"] > 0 for r in rows)
    best = min(rows, key=lambda r: r["metrics"]["perplexity"])
    assert best["artifact"] in {r["artifact"] for r in res["frontier"]}  # lowest perplexity is never dominated
    other = [r for r in res["not_comparable"] if r["artifact"] == "tiny-llama (pytorch)"]
    assert other and "window 64" in other[0]["reason"]
    worst = max(r["metrics"]["perplexity"] for r in rows)
    pick = json.loads(run_cli("pick", "--max-perplexity", str(worst * 2), "--json", check=True).stdout)
    assert pick["pick"]["artifact"] == best["artifact"]
    proc = run_cli("pick", "--max-perplexity", "1.0001", "--json")
    assert proc.returncode == 1 and json.loads(proc.stdout)["unmet_by_every_variant"] == ["max_perplexity"]
    assert f"ppl {best['metrics']['perplexity']:.2f}" in run_cli("runs", check=True).stdout
    out = tmp_path / "r.md"
    run_cli("report", "--format", "md", "--output", str(out), check=True)
    text = out.read_text()
    assert "decode ms/token" in text and "perplexity" in text and "int8-dynamic (on full)" in text


@pytest.mark.parametrize("method", ["ia3", "prefix", "adapter", "adalora"])
def test_other_methods_on_causal_lm(corpus, tmp_path, method):
    res = _finetune(corpus, tmp_path / method, method, max_steps=4, epochs=1)
    assert res.metrics["steps"] == 4 and res.metrics["dev_loss"] is not None
    model, tok = load_artifact_model(open_artifact(res.artifact.path))
    ids = stream(tok, ["the king shall speak of love"])
    assert perplexity(model, ids, 16, 8)["perplexity"] > 1  # reloads and scores in a fresh load


@pytest.mark.skipif(not HAS_LLAMA_CPP, reason="llama-cpp-python is not installed (the `llama` extra)")
def test_gguf_lora_adapter_matches_merged_model(corpus, tmp_path):
    res = _finetune(corpus, tmp_path / "lora", "lora", lr=3e-2, epochs=1)
    merged, tok = load_artifact_model(res.artifact)
    out = tmp_path / "gl"
    run_cli("compress", str(res.artifact.path), "--method", "gguf-lora", "--output", str(out), "base_quant=f32",
            check=True)
    a = open_artifact(out)
    assert a.manifest.gguf["lora"]["rank"] == 8 and (out / "adapter.gguf").exists()
    model, _ = load_artifact_model(a)
    x = torch.tensor([stream(tok, ["the king shall speak of love and war."])[:24]])
    with torch.no_grad():
        want = merged(input_ids=x).logits
    assert float((model(input_ids=x).logits - want).abs().max()) < 1e-3  # adapter at run time == merged
    proc = run_cli("compress", str(res.artifact.path), "--method", "gguf-lora")  # tiny-llama ships no GGUF
    assert proc.returncode == 2 and "base_quant" in proc.stderr


@pytest.mark.parametrize("targets,adapted", [(["q_proj", "lm_head"], "output"), (["embed_tokens"], "input")])
def test_lora_on_tied_embeddings_merges_to_the_trained_model(corpus, tmp_path, targets, adapted):
    """tiny-llama ties lm_head to embed_tokens. LoRA on one side trained that side only; merging
    into the shared matrix moved the other side too (merged != adapter, issue 17 item 16). The
    merge unties first: the merged artifact computes what the adapter computes, the side that was
    not adapted keeps the base weights, and both matrices are stored."""
    from supremum.compress.prune import MagnitudeConfig
    from supremum.compress.stage import compress
    from supremum.train.finetune import finetune

    base, tok = load_model("tiny-llama", "causal-lm")
    assert base.get_input_embeddings().weight is base.get_output_embeddings().weight
    cfg = FinetuneConfig(model={"name": "tiny-llama"}, data={"path": str(corpus), "max_length": 32},
                         method={"name": "lora", "target_modules": targets, "dropout": 0.0},
                         train={"max_steps": 12, "batch_size": 8, "lr": 3e-2, "seed": 0},
                         output=str(tmp_path / "m"))
    finetune(cfg, progress=False)
    merged, _ = load_artifact_model(open_artifact(tmp_path / "m"))
    adapter, _ = load_artifact_model(open_artifact(tmp_path / "m-adapter"))
    ids = tok("\n".join(corpus.read_text().splitlines()[-20:]))["input_ids"]
    x = torch.tensor([ids[:64]])
    with torch.no_grad():
        want, got = adapter(input_ids=x).logits, merged(input_ids=x).logits
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    assert perplexity(merged, ids, 32, 16)["perplexity"] == pytest.approx(
        perplexity(adapter, ids, 32, 16)["perplexity"], rel=1e-6)
    assert merged.config.tie_word_embeddings is False
    kept = merged.get_input_embeddings() if adapted == "output" else merged.get_output_embeddings()
    moved = merged.get_output_embeddings() if adapted == "output" else merged.get_input_embeddings()
    assert torch.equal(kept.weight, base.get_input_embeddings().weight)
    assert not torch.equal(moved.weight, base.get_input_embeddings().weight)
    # compressing the adapter-only artifact merges it the same way (and the sparse writer keeps
    # the untied pair)
    pruned = [compress(open_artifact(tmp_path / src), MagnitudeConfig(sparsity=0.2), output=tmp_path / f"p-{src}")
              for src in ("m", "m-adapter")]
    with torch.no_grad():
        a, b = (load_artifact_model(c)[0](input_ids=x).logits for c in pruned)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_gguf_whose_tokenizer_transformers_cannot_rebuild(tmp_path, monkeypatch):
    """tiny-llama's byte tokenizer exported to GGUF carries one merge outside its vocabulary
    (llama.cpp skips it; the tokenizers library refuses it): loading the lone file used to end in
    a traceback. It is one line naming the file and the fix; with its tokenizer.json beside it, it
    loads, with the exported weights."""
    import shutil

    from supremum.lm.gguf_export import write_gguf

    monkeypatch.setenv("SUPREMUM_HOME", str(tmp_path / "home"))
    model, tok = load_model("tiny-llama", "causal-lm")
    lone = tmp_path / "lone"
    lone.mkdir()
    write_gguf(model, tok, lone / "x.gguf", None)
    (tmp_path / "c.txt").write_text("the king shall speak.\n" * 20, encoding="utf-8")
    r = run_cli("eval", str(lone / "x.gguf"), "--data", str(tmp_path / "c.txt"), "--no-speed")
    assert (r.returncode, r.stderr.splitlines()) == (2, [
        f"error: {lone / 'x.gguf'}: transformers cannot rebuild the tokenizer this GGUF holds (Error while "
        "initializing BPE: Token `!\"` out of vocabulary) (put the tokenizer.json it was exported with beside it "
        "(an artifact of `compress --method gguf` keeps both), or give the model's transformers directory)"])
    beside = tmp_path / "beside"
    shutil.copytree(lone, beside)
    tok.save_pretrained(beside)
    loaded, loaded_tok = load_model(str(beside / "x.gguf"), "causal-lm")
    ids = torch.tensor([tok("the king shall speak of love")["input_ids"]])
    assert loaded_tok("the king")["input_ids"] == tok("the king")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, model(input_ids=ids).logits, atol=1e-5, rtol=0)
