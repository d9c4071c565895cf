"""Diverged training (issue 17, item 3): a non-finite loss, gradient norm, dev score or weight
stops every kind of training with one line (step, lr, what to try) and exit 2; the run is
`failed`; no artifact is written from non-finite weights, none is loaded with them, and no HTTP
answer carries NaN or Infinity."""

import json
import re
import sqlite3

import pytest
import torch
from conftest import run_cli, sentiment_rows, write_csv
from safetensors.torch import load_file, save_file

from supremum.artifact import load_artifact_model, open_artifact, save_artifact, sha256_file
from supremum.config import TrainConfig
from supremum.errors import UserError
from supremum.models import load_model
from supremum.train.divergence import Diverged
from supremum.train.loop import Split, train

LINE = re.compile(r"^error: training diverged at step (\d+) \(lr ([^)]+)\): the (loss|gradient norm) is "
                  r"(nan|inf|-inf) \(try a lower learning rate or stronger gradient clipping "
                  r"\(max_grad_norm below 1\)\)$")


def _runs(home) -> list[dict]:
    with sqlite3.connect(home / "runs.sqlite") as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM runs ORDER BY started")]


def _artifacts(home) -> list:
    with sqlite3.connect(home / "runs.sqlite") as db:
        return db.execute("SELECT id FROM artifacts").fetchall()


def test_diverged_finetune_fails_with_one_line_and_writes_nothing(tmp_path):
    data = write_csv(tmp_path / "d.csv", sentiment_rows(120))
    home, out = tmp_path / "home", tmp_path / "out"
    # lr 1e30: the first update (lr 5e29 in warm-up) makes the weights ~1e29, so step 2's
    # forward overflows on every CPU. fp32: auto would pick bf16 where the CPU has it, whose hint
    # adds "fp32 instead of bf16" (asserted below with train.bf16).
    proc = run_cli("finetune", "--model", "tiny-bert", "--data", str(data), "--max-steps", "10", "--lr", "1e30",
                   "--precision", "fp32", "--output", str(out), "--no-progress", env={"SUPREMUM_HOME": str(home)})
    assert proc.returncode == 2, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    m = LINE.match(lines[-1])
    assert m, lines[-1]
    assert int(m[1]) == 2 and float(m[2]) == 1e30
    assert "Traceback" not in proc.stderr
    assert not out.exists() and not (tmp_path / "out-adapter").exists()
    (run,) = _runs(home)
    assert run["status"] == "failed" and run["error"].startswith("Diverged: training diverged at step 2")
    assert _artifacts(home) == [] and not (home / "artifacts").exists()


def _tiny_classifier():
    model, tok = load_model("tiny-bert", "classification", label_names=["neg", "pos"])
    rows = sentiment_rows(64)
    ids = [tok(t)["input_ids"] for t, _ in rows]
    return model, tok, Split(ids, [int(lbl == "pos") for _, lbl in rows])


def test_an_infinite_gradient_norm_stops_before_the_update():
    model, tok, split = _tiny_classifier()

    def huge(m, batch, labels):  # finite loss (~1e28), gradient elements ~1e34: the norm overflows
        return 1e30 * sum(p.pow(2).sum() for p in m.parameters())

    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    cfg = TrainConfig(max_steps=3, batch_size=16, lr=1e-3, max_grad_norm=None, precision="fp32")
    with pytest.raises(Diverged) as e:
        train(model, split, None, cfg, tok.pad_token_id, loss_fn=huge)
    assert str(e.value) == ("training diverged at step 1 (lr 0.0005): the gradient norm is inf (try a lower "
                            "learning rate or gradient clipping (max_grad_norm, now off))")
    # stopped before opt.step: the weights are those before training
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_keep_best_never_selects_non_finite_weights():
    """An update can overflow the weights from a finite gradient; the evaluation after it must not
    score (and keep) them: a classifier's accuracy over NaN logits is still a number (0.5 here)."""
    model, tok, split = _tiny_classifier()

    def overflow_at_step_3(m, step):  # the fault injected where the test chooses
        if step == 2:  # 0-based: the third optimizer step
            with torch.no_grad():
                m.classifier.weight[0, 0] = float("inf")

    cfg = TrainConfig(max_steps=6, batch_size=16, lr=1e-3, eval_every=1, bf16=True)
    with pytest.raises(Diverged) as e:
        train(model, split, split, cfg, tok.pad_token_id, after_step=overflow_at_step_3)
    assert str(e.value).startswith("training diverged at step 3 (lr ")
    assert str(e.value).endswith("the model is non-finite in 1 trainable tensor(s) (try a lower learning rate, "
                                 "stronger gradient clipping (max_grad_norm below 1) or fp32 instead of bf16)")


def test_a_non_finite_dev_score_is_never_the_best():
    model, tok, split = _tiny_classifier()
    scores = iter([0.5, float("nan")])

    def scorer(m, dev):
        s = next(scores)
        return s, {"dev_loss": s}

    cfg = TrainConfig(max_steps=4, batch_size=16, lr=1e-3, eval_every=1, precision="fp32")
    with pytest.raises(Diverged, match=r"^training diverged at step 2 \(lr [^)]+\): the dev loss is nan"):
        train(model, split, split, cfg, tok.pad_token_id, scorer=scorer)


def _finetuned(tmp_path):
    from supremum.train.config import FinetuneConfig
    from supremum.train.finetune import finetune

    data = write_csv(tmp_path / "d.csv", sentiment_rows(120))
    cfg = FinetuneConfig(model={"name": "tiny-bert"}, data={"path": str(data)},
                         train={"max_steps": 4, "batch_size": 16, "lr": 3e-3}, output=str(tmp_path / "parent"))
    return finetune(cfg, progress=False).artifact


def test_diverged_distillation_fails_and_writes_nothing(tmp_path):
    from supremum.compress.distill import DistillConfig
    from supremum.compress.stage import compress
    from supremum.store import Store

    parent = _finetuned(tmp_path)
    out = tmp_path / "student"
    with pytest.raises(Diverged, match=r"^training diverged at step 2 \(lr 1e\+30\): the loss is nan"):
        compress(parent, DistillConfig(teacher=str(parent.path), max_steps=4, lr=1e30, batch_size=16), output=out)
    assert not out.exists()
    run = [r for r in Store().runs() if r["kind"] == "compress"]
    assert [r["status"] for r in run] == ["failed"] and "diverged" in run[0]["error"]
    assert len(Store().artifacts()) == 1  # the parent only


def test_diverged_language_model_finetune_fails(tmp_path):
    from supremum.store import Store
    from supremum.train.config import FinetuneConfig
    from supremum.train.finetune import finetune

    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(f"the king shall speak of love {i}." for i in range(200)) + "\n")
    cfg = FinetuneConfig(model={"name": "tiny-llama"}, data={"path": str(corpus), "max_length": 32},
                         method={"name": "lora"}, train={"max_steps": 5, "batch_size": 8, "lr": 1e30},
                         output=str(tmp_path / "lm"))
    with pytest.raises(Diverged, match=r"^training diverged at step \d \(lr [^)]+\): the loss is nan"):
        finetune(cfg, progress=False)
    assert not (tmp_path / "lm").exists() and not (tmp_path / "lm-adapter").exists()
    assert [r["status"] for r in Store().runs()] == ["failed"]


def test_scale_sweep_step_stops_on_a_non_finite_loss():
    from supremum.limit.train import Shape, _guard, build_model, optimizer, train_step

    model = build_model(Shape(16, 2), vocab=16, ctx=8, seed=0)
    with torch.no_grad():
        model.get_input_embeddings().weight[3] = float("nan")
    before = model.model.layers[0].mlp.up_proj.weight.detach().clone()
    w = torch.full((2, 9), 3, dtype=torch.long)
    with pytest.raises(Diverged) as e:
        train_step(model, optimizer(model, 0.01), w, guard=_guard(Shape(16, 2), 7, 0.01))
    assert str(e.value).startswith("d16L2 diverged at step 7 (lr 0.01): the loss is nan (the sweep's")
    assert torch.equal(model.model.layers[0].mlp.up_proj.weight, before)


def _nan_artifact(tmp_path):
    model, tok = load_model("tiny-bert", "classification", label_names=["neg", "pos"])
    out = tmp_path / "nan"
    save_artifact(model, tok, out, task="text-classification", label_names=["neg", "pos"], base_model="tiny-bert",
                  config={}, artifact_id="nanweights01")
    # by hand, as a diverged run of an older version (or another tool) would have left it
    f = out / "model.safetensors"
    tensors = load_file(f)
    tensors["classifier.weight"][1, 2] = float("nan")
    save_file(tensors, f, metadata={"format": "pt"})
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"]["model.safetensors"] = sha256_file(f)
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def test_loading_an_artifact_with_nan_weights_is_refused(tmp_path):
    art = _nan_artifact(tmp_path)
    with pytest.raises(UserError) as e:
        load_artifact_model(open_artifact(art))
    assert str(e.value) == (f"artifact nanweights01 ({art}): the weights hold NaN or Infinity (classifier.weight) "
                            "(it was written from a diverged run or an overflowing cast: re-create it, e.g. "
                            "re-train with a lower learning rate)")
    proc = run_cli("eval", str(art), "--data", str(write_csv(tmp_path / "t.csv", sentiment_rows(20))))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == f"error: {e.value}"


def test_saving_non_finite_weights_is_refused(tmp_path):
    model, tok = load_model("tiny-bert", "classification", label_names=["neg", "pos"])
    with torch.no_grad():
        model.bert.embeddings.word_embeddings.weight[5, 0] = float("-inf")
    with pytest.raises(UserError, match=r"^not writing artifact .*: the weights hold NaN or Infinity "
                       r"\(bert\.embeddings\.word_embeddings\.weight\)"):
        save_artifact(model, tok, tmp_path / "x", task="text-classification", label_names=["neg", "pos"],
                      base_model="tiny-bert", config={})
    assert list(tmp_path.iterdir()) == []


def _no_constants(name: str):
    raise AssertionError(f"{name} in a JSON body")


def test_server_never_answers_nan(tmp_path):
    """Finite weights whose logits overflow (a cast or a huge head) make NaN probabilities: the
    answer is a readable 500, valid JSON, never NaN."""
    from fastapi.testclient import TestClient

    from supremum.serve import ServeConfig
    from supremum.serve.app import create_app

    model, tok = load_model("tiny-bert", "classification", label_names=["neg", "pos"])
    with torch.no_grad():
        model.bert.pooler.dense.weight.zero_()
        model.bert.pooler.dense.bias.fill_(1.0)  # pooled = tanh(1) everywhere
        model.classifier.weight.fill_(3e38)  # 32 x 0.76 x 3e38: both logits +inf, softmax NaN
    out = tmp_path / "overflow"
    art = save_artifact(model, tok, out, task="text-classification", label_names=["neg", "pos"],
                        base_model="tiny-bert", config={}, artifact_id="overflow0001")
    art.record_metrics("eval", {"mcc": float("nan"), "accuracy": 0.5})
    with TestClient(create_app(open_artifact(out), ServeConfig())) as client:
        r = client.post("/v1/classify", json={"texts": ["great good fine"]})
        assert r.status_code == 500
        body = json.loads(r.text, parse_constant=_no_constants)
        assert "NaN or Infinity" in body["detail"]
        info = client.get("/v1/model")
        assert info.status_code == 200
        metrics = json.loads(info.text, parse_constant=_no_constants)["metrics"]["eval"]
        assert metrics == {"mcc": None, "accuracy": 0.5}

