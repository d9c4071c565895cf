"""Methods that fit a logistic head on sentence embeddings instead of taking gradient steps on the
classification loss: linear-probe (frozen encoder) and setfit (contrastive body, then the head).
Their artifacts are ordinary classifiers: safetensors + a `sentence-pooling` transform."""

import httpx
import numpy as np
import pytest
from conftest import TEXTS, logits, logits_fresh_process, run_cli, write_csv
from safetensors.torch import load_file
from scipy.special import softmax
from sklearn.linear_model import LogisticRegression

from supremum.artifact import load_artifact_model
from supremum.data import load_data
from supremum.errors import UserError
from supremum.train.config import FinetuneConfig
from supremum.train.finetune import finetune
from supremum.train.methods.linear_probe import check_labels, embeddings, write_head

SEED = 42  # train.seed's default


def tune(data, out, method: dict, **train):
    cfg = FinetuneConfig(model={"name": "tiny-bert"}, data={"path": str(data)}, method=method,
                         train={"batch_size": 16, **train}, output=str(out))
    return cfg, finetune(cfg, progress=False)


def sentence_transformer(model_dir, tmp_path, pooling="mean"):
    """The tiny encoder pooled by sentence-transformers itself: embeddings computed independently
    of supremum's pooling."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    body = Transformer(str(model_dir), max_seq_length=128)
    return SentenceTransformer(modules=[body, Pooling(32, pooling_mode=pooling)], device="cpu")


def base_encoder_dir(tmp_path):
    from supremum.models import load_model

    model, tok = load_model("tiny-bert", "classification", label_names=["neg", "pos"])
    d = tmp_path / "tiny-encoder"
    model.base_model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


def head(art):
    w = load_file(str(art.path / "model.safetensors"))
    return w["classifier.weight"].double().numpy(), w["classifier.bias"].double().numpy()


def test_linear_probe_head_is_sklearns_fit_on_the_same_embeddings(csv_data, tmp_path):
    cfg, res = tune(csv_data, tmp_path / "probe", {"name": "linear-probe"})
    m = res.metrics
    assert m["dev_accuracy"] >= 0.9
    assert m["trainable_params"] == 32 * 2 + 2  # the head alone
    assert res.artifact.manifest.transforms == [{"kind": "sentence-pooling", "pooling": "mean",
                                                 "normalize": False}]
    # The same training texts, embedded by sentence-transformers' own mean pooling.
    data = load_data(cfg.data)
    st = sentence_transformer(base_encoder_dir(tmp_path), tmp_path)
    x = st.encode(data.texts("train"), convert_to_numpy=True).astype(np.float64)
    clf = LogisticRegression(C=1.0, max_iter=1000, random_state=SEED).fit(x, data.labels("train"))
    w, b = head(res.artifact)
    np.testing.assert_allclose(w, np.vstack([-clf.coef_ / 2, clf.coef_ / 2]), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(b, [-clf.intercept_[0] / 2, clf.intercept_[0] / 2], rtol=1e-3, atol=1e-4)
    # Its softmax is sklearn's predict_proba, in this process and in a fresh one.
    here = logits(res.artifact)
    expected = clf.predict_proba(st.encode(TEXTS, convert_to_numpy=True).astype(np.float64))
    np.testing.assert_allclose(softmax(here, axis=1), expected, atol=1e-4)
    np.testing.assert_allclose(logits_fresh_process(res.artifact.path), here, atol=1e-6)


def test_linear_probe_artifact_evaluates_and_compresses(csv_data, tmp_path):
    from supremum.compress import compress, compressors

    _, res = tune(csv_data, tmp_path / "probe", {"name": "linear-probe"})
    proc = run_cli("eval", str(res.artifact.path), "--no-speed", check=True)
    assert f"{res.metrics['dev_accuracy']:.4f}" in proc.stdout  # the dev split, scored in a fresh process
    onnx = compress(res.artifact, compressors()["onnx"].config_cls(), output=tmp_path / "onnx")
    np.testing.assert_allclose(logits(onnx), logits(res.artifact), atol=1e-4)
    pruned = compress(res.artifact, compressors()["prune-heads"].config_cls(amount=0.25),
                      output=tmp_path / "pruned")
    assert pruned.manifest.transforms[0] == res.artifact.manifest.transforms[0]  # still mean-pooled
    np.testing.assert_allclose(logits_fresh_process(pruned.path), logits(pruned), atol=1e-6)
    # Distillation reads hidden states through the pooled forward; a plain student stays plain.
    distill = compressors()["distill"].config_cls
    kept = compress(pruned, distill(max_steps=2, hidden_weight=1.0, teacher=str(res.artifact.path)),
                    output=tmp_path / "distilled")
    assert kept.manifest.transforms[0] == res.artifact.manifest.transforms[0]
    plain = compress(res.artifact, distill(max_steps=2, student="tiny-bert"), output=tmp_path / "student")
    assert all(t["kind"] != "sentence-pooling" for t in plain.manifest.transforms)
    assert type(load_artifact_model(plain)[0]).__name__ == "BertForSequenceClassification"


@pytest.mark.parametrize("classes", [2, 3])
def test_written_head_gives_predict_proba(classes):
    from supremum.models import load_model
    from supremum.models.sentence import to_sentence_classifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 32))
    y = np.arange(60) % classes
    clf = LogisticRegression(C=0.5).fit(x, y)
    model, _ = load_model("tiny-bert", "classification", label_names=[str(i) for i in range(classes)])
    model = to_sentence_classifier(model, "mean", False)
    write_head(model, clf)
    got = model.classifier(__import__("torch").from_numpy(x).float()).detach().double().numpy()
    np.testing.assert_allclose(softmax(got, axis=1), clf.predict_proba(x), atol=1e-5)


def test_setfit_learns_and_its_head_is_the_logistic_fit_of_its_body(csv_data, tmp_path):
    from test_serve import server

    method = {"name": "setfit", "num_iterations": 2, "body_lr": 1e-3, "head_c": 2.0}
    cfg, res = tune(csv_data, tmp_path / "setfit", method, threads=1)
    m = res.metrics
    assert m["dev_accuracy"] >= 0.95
    assert m["steps"] == 2 * 2 * 192 // 16  # pairs (2 per text per iteration) / batch
    assert m["trainable_params"] == m["total_params"]
    model, tok = load_artifact_model(res.artifact)
    base = load_file(str(base_encoder_dir(tmp_path) / "model.safetensors"))
    trained = model.base_model.state_dict()
    assert not np.allclose(trained["encoder.layer.0.attention.self.query.weight"].numpy(),
                           base["encoder.layer.0.attention.self.query.weight"].numpy())
    # setfit's head was fit on its body's embeddings; refitting on the artifact's gives it again,
    # so the body went back into the classifier and the head was converted exactly.
    data = load_data(cfg.data)
    ids = tok(data.texts("train"), truncation=True, max_length=cfg.data.max_length)["input_ids"]
    x = embeddings(model, ids, tok.pad_token_id, 64)
    clf = LogisticRegression(C=2.0, max_iter=1000, random_state=SEED).fit(x, data.labels("train"))
    w, b = head(res.artifact)
    np.testing.assert_allclose(w[1] - w[0], clf.coef_[0], rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(b[1] - b[0], clf.intercept_[0], rtol=1e-3, atol=1e-3)
    # Served from a fresh process: the same probabilities.
    probs = softmax(logits(res.artifact), axis=1)
    with server(res.artifact.path) as (url, _):
        got = httpx.post(url + "/v1/classify", json={"texts": TEXTS}).json()["predictions"]
    served = np.array([[p["probabilities"][k] for k in ("neg", "pos")] for p in got])
    np.testing.assert_allclose(served, probs, atol=1e-6)


@pytest.mark.parametrize(("args", "message"), [
    (["--method", "setfit", "--max-steps", "5"],
     "--max-steps does not apply to method setfit, which trains without the gradient loop "
     "(it honours: batch_size, dropout, seed, threads)"),
    (["--method", "linear-probe", "--lr", "1e-3"], "--lr does not apply to method linear-probe"),
    (["--method", "setfit", "method.head_c=0"], "method.head_c"),
    (["--method", "linear-probe", "method.pooling=max"], "method.pooling"),
])
def test_bad_settings_are_one_line_errors(args, message, csv_data):
    proc = run_cli("finetune", "--model", "tiny-bert", "--data", str(csv_data), *args)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_a_class_without_training_examples_is_a_one_line_error(tmp_path):
    d = tmp_path / "splits"
    d.mkdir()
    write_csv(d / "train.csv", [(f"great good {i}", "pos") for i in range(20)])
    write_csv(d / "dev.csv", [("great 1", "pos"), ("awful 2", "neg")])
    proc = run_cli("finetune", "--model", "tiny-bert", "--data", str(d), "--method", "setfit")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "label 'neg' occurs in dev (1 rows) but never in train (pos)" in proc.stderr  # the loader's check
    with pytest.raises(UserError, match=r"setfit: the training split has no example of label id\(s\) \[0\]"):
        check_labels([1, 1], 2, "setfit")  # the method's own, for a training subset that lost a class


def test_search_refuses_methods_without_a_gradient_loop(csv_data, tmp_path):
    from pydantic import ValidationError

    from supremum.studies.search import SearchConfig

    base = FinetuneConfig(model={"name": "tiny-bert"}, data={"path": str(csv_data)})
    with pytest.raises(ValidationError, match=r"methods \['setfit'\] fit without the gradient loop"):
        SearchConfig(base=base, methods=["full", "setfit"], budget_minutes=1, output=str(tmp_path))
