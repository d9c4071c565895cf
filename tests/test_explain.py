"""`supremum explain`: word attributions (Integrated Gradients, gradient x input, occlusion,
attention rollout) and ERASER faithfulness, on a tiny-bert classifier and its ONNX export."""

import json
import math
import os

import numpy as np
import pytest
import torch
from conftest import run_cli, sentiment_rows, write_csv

from supremum.artifact import save_artifact
from supremum.backends import load
from supremum.errors import UserError
from supremum.evaluate.quality import softmax
from supremum.explain import attribution as attr
from supremum.explain.config import AOPC_PERCENTS, ExplainConfig
from supremum.explain.faithfulness import measure, summarize, top_words
from supremum.explain.page import render
from supremum.explain.run import choose_methods, explain
from supremum.explain.words import encode, merge, token_words
from supremum.infer import predict_logits
from supremum.store import Store


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny-bert sentiment classifier (module-wide: training is the slow part) and its data."""
    from supremum.train.config import FinetuneConfig
    from supremum.train.finetune import finetune

    root = tmp_path_factory.mktemp("explain")
    data = write_csv(root / "reviews.csv", sentiment_rows(240))
    home, os.environ["SUPREMUM_HOME"] = os.environ.get("SUPREMUM_HOME"), str(root / "home")
    try:
        cfg = FinetuneConfig(model={"name": "tiny-bert"}, data={"path": str(data)},
                             train={"max_steps": 60, "lr": 3e-3, "batch_size": 8}, output=str(root / "parent"))
        art = finetune(cfg, progress=False).artifact
    finally:
        os.environ["SUPREMUM_HOME"] = home or ""
    return art, data


def _predict(model, tok):
    return lambda ids: softmax(predict_logits(model, ids, tok.pad_token_id).astype(np.float64))


def test_words_merge_subtokens_by_offsets():
    # hand-made offsets: [CLS], "gr" "eat" (word 0), a whitespace-only token, "no" "t" (word 2 of
    # "x  not"), [SEP]
    text = "great x  not"
    offsets = [(0, 0), (0, 2), (2, 5), (5, 6), (9, 11), (11, 12), (0, 0)]
    special = [1, 0, 0, 0, 0, 0, 1]
    tw = token_words(offsets, special, text, [(0, 5), (6, 7), (9, 12)])
    assert tw == [None, 0, 0, None, 2, 2, None]
    np.testing.assert_array_equal(merge(np.array([9.0, 1, 2, 4, 8, 16, 9]), tw, 3), [3.0, 0.0, 24.0])


def test_encode_with_the_tokenizer_of_the_artifact(trained):
    _, tok = load(trained[0])
    enc = encode(tok, "Great <b>film</b>,  not bad!", 128)
    assert enc.words == ["Great", "<b>film</b>,", "not", "bad!"]
    assert enc.tokens[:3] == ["[CLS]", "g", "##r"] and enc.token_word[:7] == [None, 0, 0, 0, 0, 0, 1]
    assert enc.token_word.count(1) == len("<b>film</b>,") and enc.truncated_words == 0
    assert enc.without({1, 3}) == [i for i, w in zip(enc.ids, enc.token_word, strict=True) if w not in (1, 3)]
    cut = encode(tok, "great awful dull", 9)  # [CLS] + 7 characters + [SEP]: "dull" is cut off
    assert cut.words == ["great", "awful"] and cut.truncated_words == 1
    with pytest.raises(UserError, match="nothing to explain"):
        encode(tok, "   ", 128)


def test_integrated_gradients_completeness(trained):
    model, tok = load(trained[0])
    enc = encode(tok, "great lovely awful 12", 128)
    a = attr.integrated_gradients(model, enc, 1, tok.pad_token_id, steps=50)
    with torch.no_grad():
        fx = model(input_ids=torch.tensor([enc.ids])).logits[0, 1].item()
        fb = model(input_ids=attr.baseline_ids(enc, tok.pad_token_id)).logits[0, 1].item()
    delta = a.extra["convergence_delta"]
    assert abs(a.extra["sum"] - (fx - fb)) <= abs(delta) + 1e-6
    assert abs(delta) < 0.01 * abs(fx - fb)  # 50 steps: the integral is accurate to 1%
    assert len(a.words) == 4 and a.words.sum() == pytest.approx(a.extra["sum"], abs=0.05 * abs(fx - fb) + 1e-6)


def test_occlusion_equals_hand_computation(trained):
    model, tok = load(trained[0])
    predict = _predict(model, tok)
    enc = encode(tok, "great awful 7", 128)
    got = attr.occlusion(predict, enc, 0, tok.mask_token_id, batch_size=2).words
    p = predict([enc.ids])[0, 0]
    hand = [p - predict([[tok.mask_token_id if w == k else t for t, w in zip(enc.ids, enc.token_word,
                                                                               strict=True)]])[0, 0]
            for k in range(3)]
    np.testing.assert_allclose(got, hand, atol=1e-7)
    assert np.abs(got).max() > 1e-3  # the trained model does respond to its words


def test_faithfulness_of_a_planted_word():
    """The model's output depends on one word only ("zz", token id 99): an attribution that ranks
    it first has comprehensiveness 0.8 and sufficiency 0 at every k; a random one less."""
    from supremum.explain.words import Encoded

    words = "a b zz c d e f g h i".split()
    ids = [1] + [99 if w == "zz" else 10 + i for i, w in enumerate(words)] + [2]
    enc = Encoded(" ".join(words), ids, words, [None, *range(10), None], words, 0)

    def predict(batch):
        p = np.array([0.9 if 99 in x else 0.1 for x in batch])
        return np.stack([1 - p, p], 1)

    planted = np.zeros(10)
    planted[2] = 1.0
    seeds = [0, 1, 2, 3]
    res = measure(predict, enc, 1, 0.9, {"planted": planted}, seeds)
    assert res["planted"]["comprehensiveness"] == pytest.approx(0.8)
    assert res["planted"]["sufficiency"] == pytest.approx(0.0)
    for s in seeds:  # random: 0.8 for each k whose top words happen to include "zz"
        order = np.random.default_rng([s, 10, *ids]).permutation(10)
        hits = [2 in top_words(order, p) for p in AOPC_PERCENTS]
        assert res[f"random:{s}"]["comprehensiveness"] == pytest.approx(0.8 * np.mean(hits))
    summary = summarize([res], ["planted"], seeds)
    assert summary["random"]["comprehensiveness"]["mean"] < 0.8
    assert summary["planted"]["comprehensiveness_vs_random"] > 1.0
    # a model that barely depends on its words: drops of ~1e-7 give no ratio, not "2.16x"
    tiny = {"planted": {"comprehensiveness": 2e-7, "sufficiency": 0.0},
            **{f"random:{s}": {"comprehensiveness": 1e-7, "sufficiency": 0.0} for s in seeds}}
    assert summarize([tiny], ["planted"], seeds)["planted"]["comprehensiveness_vs_random"] is None
    assert [len(top_words(np.arange(10.0), p)) for p in AOPC_PERCENTS] == [1, 1, 1, 2, 5]


def test_explain_run_json_html_and_store(trained, tmp_path):
    art, _ = trained
    text = "<script>alert(1)</script> great & fine"
    res = explain(art, [text, "awful dull 3"], [1, 0], ExplainConfig(steps=20, seeds=[0, 1]),
                  output=tmp_path / "out", store=Store(tmp_path / "home"))
    assert res["methods"] == ["integrated-gradients", "input-x-gradient", "occlusion", "attention-rollout"]
    e = res["examples"][0]
    assert e["words"] == ["<script>alert(1)</script>", "great", "&", "fine"] and e["label"] == "pos"
    model, tok = load(art)
    p = _predict(model, tok)([tok(text)["input_ids"]])[0]
    assert e["predicted"] == ["neg", "pos"][int(p.argmax())] and e["probability"] == pytest.approx(p.max())
    assert all(len(e["scores"][m]) == 4 for m in res["methods"])
    on_disk = json.loads((tmp_path / "out" / "explanations.json").read_text())
    assert on_disk["faithfulness"] == res["faithfulness"]
    page = (tmp_path / "out" / "explanations.html").read_text()
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&amp;" in page
    run = Store(tmp_path / "home").get_run(res["run"])
    assert run["kind"] == "explain" and run["status"] == "finished" and run["parents"] == [art.id]
    assert run["metrics"]["faithfulness"] == res["faithfulness"] and run["metrics"]["examples"] == 2


def test_html_escapes_every_text():
    res = {"artifact": "a<b", "lineage": "<i>x</i>", "methods": ["occlusion"], "skipped": {},
           "faithfulness": None, "settings": {"aopc_percents": [1], "seeds": [0]},
           "examples": [{"words": ["<script>alert(1)</script>"], "scores": {"occlusion": [0.5]},
                         "predicted": "<b>", "label": None, "probability": 0.9, "truncated_words": 0}]}
    page = render(res)
    assert "<script" not in page and "<b><b>" not in page and "<i>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<b>&lt;b&gt;</b>" in page
    assert "&lt;i&gt;" in page and "rgba(0,160,60,0.750)" in page


def test_onnx_artifact_explained_through_onnx_runtime(trained, tmp_path):
    from supremum.compress import compress, compressors

    art, _ = trained
    onnx = compress(art, compressors()["onnx"].config_cls(), output=tmp_path / "onnx")
    ort_model, tok = load(onnx)
    methods, skipped = choose_methods(onnx, ort_model, tok, tok("great")["input_ids"], None)
    assert methods == ["occlusion"]
    assert skipped == {m: "its runtime computes no gradients" for m in attr.GRADIENT} | {
        "attention-rollout": "it reads PyTorch attention weights"}
    enc = encode(tok, "great awful fine 7", 128)
    via_ort = attr.occlusion(_predict(ort_model, tok), enc, 1, tok.mask_token_id, 4).words
    pt_model, _ = load(art)
    via_pt = attr.occlusion(_predict(pt_model, tok), enc, 1, tok.mask_token_id, 4).words
    np.testing.assert_allclose(via_ort, via_pt, atol=1e-5)
    with pytest.raises(UserError) as e:
        choose_methods(onnx, ort_model, tok, enc.ids, ["integrated-gradients"])
    assert str(e.value) == (f"integrated-gradients cannot explain artifact {onnx.id} (onnxruntime): its runtime "
                            "computes no gradients (use --methods occlusion, which runs on every backend)")


def test_unknown_method_named_with_the_valid_ones():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="unknown method 'shap'; choose from integrated-gradients, "
                       "input-x-gradient, occlusion, attention-rollout"):
        ExplainConfig(methods="occlusion,shap")
    both = ExplainConfig(methods="occlusion, integrated-gradients").methods
    assert both == ["occlusion", "integrated-gradients"]


def test_no_gradient_methods_through_int8_kernels(trained, tmp_path):
    """With the head kept fp32, gradients would still flow around the int8 layers (through the
    residual paths) and PyTorch would only warn: the attributions would be silently wrong."""
    from supremum.compress import compress, compressors

    cfg = compressors()["int8-dynamic"].config_cls(keep=["bert.pooler.dense", "classifier"])
    q = compress(trained[0], cfg, output=tmp_path / "q8")
    model, tok = load(q)
    methods, skipped = choose_methods(q, model, tok, tok("great")["input_ids"], None)
    assert methods == ["occlusion", "attention-rollout"]
    assert skipped["integrated-gradients"] == "quantized::linear_dynamic has no gradient (no autograd kernel)"
    whole = compress(trained[0], compressors()["int8-dynamic"].config_cls(), output=tmp_path / "q8all")
    model, tok = load(whole)
    assert choose_methods(whole, model, tok, tok("great")["input_ids"], None)[1]["input-x-gradient"] == (
        "quantized::linear_dynamic has no gradient (no autograd kernel)")


def fails(capsys, monkeypatch, *args) -> str:
    """The CLI's entry point in this process (as `supremum explain ARGS`): exit 2, one line."""
    from supremum.cli import main

    monkeypatch.setattr("sys.argv", ["supremum", "explain", *args])
    capsys.readouterr()  # what came before (progress bars of the set-up) is not the command's
    with pytest.raises(SystemExit) as e:
        main()
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1, err
    return err


def test_cli_explain_data_and_bad_input(trained, tmp_path, capsys, monkeypatch):
    art, data = trained
    out = tmp_path / "cli"
    proc = run_cli("explain", str(art.path), "--data", str(data), "--limit", "3", "--methods",
                   "occlusion,integrated-gradients", "--steps", "8", "--seeds", "0", "--output", str(out),
                   "--json", check=True)
    res = json.loads(proc.stdout)
    assert res["methods"] == ["integrated-gradients", "occlusion"] and len(res["examples"]) == 3
    assert res["source"] == "3 rows of reviews.csv (its dev split)"
    assert all(e["label"] in ("neg", "pos") for e in res["examples"])
    assert set(res["skipped"]) == set() and (out / "explanations.html").exists()
    assert math.isfinite(res["faithfulness"]["occlusion"]["comprehensiveness"])

    assert fails(capsys, monkeypatch, str(art.path)) == (
        'error: explain needs --text or --data (one of them) (e.g. --text "a fine film" or --data reviews.csv '
        "--limit 20)")
    assert fails(capsys, monkeypatch, str(art.path), "--data", str(data), "--limit", "0") == (
        "error: --limit 0: Input should be greater than or equal to 1 (see `supremum explain --help`)")

    from supremum.models import load_model

    model, tok = load_model("tiny-llama", "causal-lm")
    lm = save_artifact(model, tok, tmp_path / "lm", task="text-generation", label_names=None,
                       base_model="tiny-llama", config={})
    assert fails(capsys, monkeypatch, str(lm.path), "--data", str(data)) == (
        "error: a causal LM is explained on --text prompts (no --data, --against or --drift) "
        '(e.g. --text "Translate to German: a dog runs" [--target "ein Hund läuft"])')


# --- explanation drift across compression (issue 21 part 3) ---------------------------------------

def test_spearman_and_top_k_overlap_equal_hand_values():
    from supremum.explain import drift

    a, b = np.array([0.3, -1.0, 2.5, 0.1, 7.0]), np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    # ranks 3 1 4 2 5 vs 1 2 3 4 5: d = 2 -1 1 -2 0, sum d^2 = 10, rho = 1 - 6 * 10 / (5 * 24)
    assert drift.spearman(a, b) == pytest.approx(0.5)
    assert drift.spearman(a, -a) == -1.0 and drift.spearman(a, a) == 1.0
    # ties get average ranks: [1, 1, 3] -> 1.5 1.5 3 vs 1 2 3: Pearson of the ranks = sqrt(3)/2
    assert drift.spearman(np.array([1.0, 1.0, 3.0]), np.array([1.0, 2.0, 3.0])) == pytest.approx(math.sqrt(3) / 2)
    assert drift.spearman(np.zeros(4), b[:4]) is None and drift.spearman(a[:1], b[:1]) is None
    # top-1 {4} vs {4}; top-3 {4, 2, 0} vs {4, 3, 2}: 2 of 3; top-5: all five words
    assert drift.compare(a, b) == {"spearman": pytest.approx(0.5),
                                   "top_k_overlap": {"1": 1.0, "3": 2 / 3, "5": 1.0}}
    # a 3-word text: k is cut to 3 words; ties go to the earlier word ({0, 1} vs {0, 2})
    assert drift.top_k_overlap(np.array([5.0, 1.0, 0.0]), np.array([0.0, 9.0, 1.0]), 5) == 1.0
    assert drift.top_k_overlap(np.array([2.0, 2.0, 2.0]), np.array([3.0, 1.0, 3.0]), 2) == 0.5
    s = drift.summarize([drift.compare(a, b), drift.compare(a, a), drift.compare(np.zeros(5), a)])
    assert s["spearman"] == {"mean": pytest.approx(0.75), "sd": pytest.approx(math.sqrt(0.125)), "n": 2}
    # top-1 of zeros is word 0, of a word 4: overlaps 1, 1, 0
    assert s["top_k_overlap"]["1"] == {"mean": pytest.approx(2 / 3), "sd": pytest.approx(math.sqrt(1 / 3)), "n": 3}
    assert drift.sentence("int8-dynamic", "occlusion", s, 0.98) == (
        "int8-dynamic (occlusion) keeps 1.00 of the parent's top-5 words; Spearman 0.75 ± 0.35; "
        "predictions agree on 98%")


def test_drift_of_an_artifact_against_itself_is_exactly_one(trained, tmp_path):
    from test_frontier import record_eval

    from supremum.cli_render import _agreement, _agreement_column
    from supremum.frontier import frontier

    art, _ = trained
    store = Store(tmp_path / "home")
    texts = ["great lovely 3", "awful dull boring 12", "fine"]
    res = explain(art, texts, None, ExplainConfig(methods="occlusion,integrated-gradients", steps=8, seeds=[0]),
                  output=tmp_path / "out", store=store, against=art)
    d = res["drift"]
    assert (d["against"], d["examples"], d["compared"], d["prediction_agreement"]) == (art.id, 3, 3, 1.0)
    for m in ("occlusion", "integrated-gradients"):
        s = d["methods"][m]
        # "fine" has one word: no rank correlation, but its top-k overlap counts
        assert s["spearman"] == {"mean": 1.0, "sd": 0.0, "n": 2}
        assert s["top_k_overlap"] == {k: {"mean": 1.0, "sd": 0.0, "n": 3} for k in ("1", "3", "5")}
        assert s["sentence"] == (f"{art.id} ({m}) keeps 1.00 of the parent's top-5 words; Spearman 1.00 ± 0.00; "
                                 "predictions agree on 100%")
    page = (tmp_path / "out" / "explanations.html").read_text()
    assert f"<li>{art.id} (occlusion) keeps 1.00 of the parent&#39;s top-5 words; Spearman 1.00 ± 0.00" in page
    stored = store.get_run(res["run"])["metrics"]["drift"]
    assert "per_example" not in stored["methods"]["occlusion"] and stored["prediction_agreement"] == 1.0
    assert store.get_run(res["run"])["config"]["against"] == art.id
    # the frontier shows the agreement for the artifact that has it, and a column only then
    record_eval(store, "eval-a", art.id, 0.9, 5.0)
    record_eval(store, "eval-b", "other", 0.8, 1.0)
    fr = frontier(store=store)
    rows = {r["artifact"]: r for r in fr["frontier"] + fr["dominated"]}
    assert rows[art.id]["explanation_agreement"] == {
        "against": art.id, "method": "occlusion", "examples": 3, "top5": 1.0, "spearman": 1.0,
        "prediction_agreement": 1.0}
    assert rows["other"]["explanation_agreement"] is None
    col = _agreement_column(fr)
    assert col == ("expl. top-5 vs parent",) and _agreement(rows[art.id], col) == ["1.00 (rho 1.00)"]
    assert _agreement(rows["other"], col) == ["-"]
    assert _agreement_column({"frontier": [rows["other"]], "dominated": []}) == ()


def test_cli_drift_needs_a_parent(trained, capsys, monkeypatch):
    art, _ = trained
    assert fails(capsys, monkeypatch, str(art.path), "--text", "fine", "--drift") == (
        f"error: artifact {art.id} has no parent in its lineage (it was not made by compressing another) "
        "(give the artifact to compare with: --against <artifact>)")
    assert fails(capsys, monkeypatch, str(art.path), "--text", "fine", "--drift", "--against", str(art.path)) == (
        "error: --against and --drift both name the artifact to compare with (give one: --drift for the parent "
        "in the lineage, or --against <artifact>)")


# --- POST /v1/explain (issue 21 part 6) ------------------------------------------------------------

def test_serve_explain_equals_the_command_and_keeps_classify_limits(trained, tmp_path):
    from fastapi.testclient import TestClient

    from supremum.serve import ServeConfig
    from supremum.serve.app import create_app

    art, _ = trained
    text = "great   awful fine 7"
    res = explain(art, [text], None, ExplainConfig(methods="occlusion,integrated-gradients", steps=12, seeds=[0]),
                  output=tmp_path / "out", store=Store(tmp_path / "home"))
    e = res["examples"][0]
    with TestClient(create_app(art, ServeConfig(max_texts=2, max_chars=30, max_body_bytes=400))) as c:
        r = c.post("/v1/explain", json={"texts": [text, "fine"]})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model"] == art.id and body["method"] == "occlusion"
        got = body["explanations"][0]
        assert got["words"] == e["words"] == ["great", "awful", "fine", "7"]
        np.testing.assert_allclose(got["scores"], e["scores"]["occlusion"], atol=1e-6)
        assert got["label"] == e["predicted"] and got["probability"] == pytest.approx(e["probability"], abs=1e-7)
        assert "convergence_delta" not in got and body["explanations"][1]["words"] == ["fine"]
        ig = c.post("/v1/explain", json={"texts": [text], "method": "integrated-gradients", "steps": 12}).json()
        np.testing.assert_allclose(ig["explanations"][0]["scores"], e["scores"]["integrated-gradients"], atol=1e-6)
        assert ig["explanations"][0]["convergence_delta"] == pytest.approx(
            e["details"]["integrated-gradients"]["convergence_delta"], abs=1e-6)
        # the limits answer as classify's do, with the same bodies
        for bad in ({"texts": ["a", "b", "c"]}, {"texts": ["a" * 31]}, {"texts": []}, {"texts": ["ok", " "]}):
            ex, cl = c.post("/v1/explain", json=bad), c.post("/v1/classify", json=bad)
            assert ex.status_code == cl.status_code == 422 and ex.json() == cl.json(), bad
        assert c.post("/v1/explain", json={"texts": ["a"] * 3}).json()["detail"][0]["loc"] == ["body", "texts"]
        big = {"texts": ["a" * 25] * 2, "pad": "x" * 400}
        ex, cl = c.post("/v1/explain", json=big), c.post("/v1/classify", json=big)
        assert ex.status_code == cl.status_code == 413 and ex.json() == cl.json() == {
            "detail": "request body over 400 bytes"}
        assert c.post("/v1/explain", json={"texts": ["a"], "method": "shap"}).status_code == 422
        assert c.post("/v1/explain", json={"texts": ["a"], "steps": 201}).status_code == 422


def test_serve_explain_refuses_a_language_model(tmp_path):
    from fastapi.testclient import TestClient

    from supremum.models import load_model
    from supremum.serve import ServeConfig
    from supremum.serve.app import create_app

    model, tok = load_model("tiny-llama", "causal-lm")
    lm = save_artifact(model, tok, tmp_path / "lm", task="text-generation", label_names=None,
                       base_model="tiny-llama", config={})
    with TestClient(create_app(lm, ServeConfig())) as c:
        r = c.post("/v1/explain", json={"texts": ["hello"]})
    assert r.status_code == 422 and r.json() == {
        "detail": f"{lm.id} is a text-generation model; explain supports classifiers only"}


def test_explain_drops_empty_rows_when_asked(trained, tmp_path, capsys, monkeypatch):
    """The empty-row error suggests --drop-empty: explain takes it (it used to be an unknown option)."""
    art, _ = trained
    data = tmp_path / "some-empty.csv"
    data.write_text("text,label\na fine film,pos\n  ,neg\na dull film,neg\n", encoding="utf-8")
    assert fails(capsys, monkeypatch, str(art.path), "--data", str(data)) == (
        f"error: {data}: line 3 has an empty text (remove those rows or fill them in, or pass --drop-empty "
        "(recipe: data.drop_empty: true) to drop them)")
    from supremum.cli import main

    monkeypatch.setattr("sys.argv", ["supremum", "explain", str(art.path), "--data", str(data), "--drop-empty",
                                     "--methods", "occlusion", "--seeds", "0", "--output", str(tmp_path / "x"),
                                     "--json"])
    main()
    out = capsys.readouterr()
    assert f"data: dropped 1 row with an empty text from {data} (line 3)" in out.err
    res = json.loads(out.out)
    assert [e["text"] for e in res["examples"]] == ["a fine film", "a dull film"]
