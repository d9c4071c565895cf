"""Self-training (pseudo-labels) and domain-adaptive pretraining on unlabelled text (issue 20, part 4):
the threshold is respected exactly, the rounds and counts are recorded in the manifest and match a
hand count, continued pretraining lowers the LM loss, artifacts reload identically, unset keys keep
every config hash, and bad unlabelled files are one line with exit 2."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import logits, logits_fresh_process, run_cli, sentiment_rows, write_csv

from supremum.artifact import open_artifact
from supremum.config import DataConfig, DomainPretrainConfig
from supremum.data.unlabeled import read_unlabeled
from supremum.errors import UserError
from supremum.hashing import content_hash
from supremum.train.config import FinetuneConfig
from supremum.train.finetune import config_hash, finetune
from supremum.train.selftrain import round_train, select, softmax

# Hand-made probabilities: row 3 sits just below 0.9, rows 1 and 6 exactly on it.
PROBS = np.array([[0.95, 0.05], [0.10, 0.90], [0.50, 0.50], [0.899999, 0.100001],
                  [0.02, 0.98], [0.91, 0.09], [0.90, 0.10]])


def test_select_respects_the_threshold_and_counts_by_hand():
    assert select(PROBS, 0.9, None, False).tolist() == [0, 1, 4, 5, 6]  # >= 0.9; row 3 (0.899999) not
    # balanced: class 0 has 3 above (rows 0, 5, 6), class 1 has 2 (rows 4, 1): the 2 most confident of each
    assert select(PROBS, 0.9, None, True).tolist() == [0, 1, 4, 5]
    # capped: the 3 most confident (0.98, 0.95, 0.91); balanced: 3 // 2 = 1 per class
    assert select(PROBS, 0.9, 3, False).tolist() == [0, 4, 5]
    assert select(PROBS, 0.9, 3, True).tolist() == [0, 4]
    assert select(PROBS, 0.99, None, False).tolist() == []
    assert select(PROBS, 0.96, None, True).tolist() == []  # class 0 has none above: none of either


def test_no_pseudo_label_below_the_threshold_on_random_probabilities():
    rng = np.random.default_rng(0)
    probs = softmax(rng.normal(size=(500, 3)) * 3)
    for t in (0.5, 0.8, 0.95):
        rows = select(probs, t, None, False)
        assert rows.tolist() == np.flatnonzero(probs.max(1) >= t).tolist()
        balanced = select(probs, t, None, True)
        assert (probs[balanced].max(1) >= t).all()
        counts = np.bincount(probs[balanced].argmax(1), minlength=3)
        assert len(set(counts)) == 1 and counts[0] == min(np.bincount(probs[rows].argmax(1), minlength=3))


# bf16 and LoRA's dropout (0.1, its default then): as every dump before train.precision held them
RAW = {"model": "tiny-bert", "data": {"path": "d.csv", "max_length": 32},
       "method": {"name": "lora", "r": 4, "dropout": 0.1}, "train": {"max_steps": 5, "seed": 3, "bf16": False}}


def test_unset_keys_keep_every_config_hash():
    # Computed on main before data.unlabeled, self_training and domain_pretrain existed.
    before = ("7cd5aa5b8139af0d", "840a32331b9c7b9f")
    cfg = FinetuneConfig.model_validate(RAW)
    assert (config_hash(cfg), content_hash(cfg.model_dump(mode="json"))) == before
    unset = {**RAW, "data": {**RAW["data"], "unlabeled": None}, "self_training": None, "domain_pretrain": None}
    cfg = FinetuneConfig.model_validate(unset)
    assert (config_hash(cfg), content_hash(cfg.model_dump(mode="json"))) == before
    used = {**RAW, "data": {**RAW["data"], "unlabeled": "u.txt"}, "self_training": {"rounds": 1}}
    assert config_hash(FinetuneConfig.model_validate(used)) != before[0]


def test_round_steps_epochs_raises_max_steps_to_the_rounds_epochs():
    from supremum.config import SelfTrainingConfig, TrainConfig

    t = TrainConfig(max_steps=60, epochs=3, batch_size=16, eval_every=60)
    # 5,000 rows: 3 x ceil(5000 / 16) = 939 steps, the end-only evaluation moved with them
    r = round_train(t, "epochs", 5000)
    assert (r.max_steps, r.eval_every, r.epochs, r.lr) == (939, 939, 3, t.lr)
    assert round_train(t, "epochs", 64) == t  # 3 x 4 = 12 <= 60: the labelled budget's steps stand
    assert round_train(t, "same", 5000) == t
    assert round_train(t.model_copy(update={"eval_every": 20}), "epochs", 5000).eval_every == 20
    assert round_train(t, "epochs", 5000, world=2).max_steps == 3 * 157  # ceil(5000 / 32) per epoch
    free = TrainConfig(epochs=3, batch_size=16)  # no max_steps: epochs already follow the rows
    assert round_train(free, "epochs", 5000) == free
    # the default leaves every existing self-training hash alone
    st = {"rounds": 1}
    assert SelfTrainingConfig(**st).model_dump() == {"rounds": 1, "threshold": 0.9, "max_per_round": None,
                                                     "balance": True, "keep": "best"}
    assert SelfTrainingConfig(round_steps="epochs").model_dump()["round_steps"] == "epochs"


def test_round_steps_epochs_trains_the_round_over_its_rows(tmp_path):
    data, unl = _setup(tmp_path)
    st = {"rounds": 1, "threshold": 0.5, "balance": False, "round_steps": "epochs"}
    res = finetune(_cfg(data, tmp_path / "st", data={"unlabeled": str(unl)}, self_training=st,
                        train={"max_steps": 4, "epochs": 2, "eval_every": 4}), progress=False)
    r0, r1 = res.artifact.manifest.model_extra["self_training"]["rounds_run"]
    train_rows = res.artifact.manifest.data["sizes"]["train"]
    assert r0["steps"] == 4 and r1["pseudo_labelled"] > 0
    assert r1["steps"] == 2 * -(-(train_rows + r1["pseudo_labelled"]) // 8)


def test_round_steps_reach_the_methods_schedule(tmp_path):
    """AdaLoRA's rank schedule spans the training it is given: the kept round's adapter was
    built for that round's step count, not the first training's."""
    data, unl = _setup(tmp_path)
    st = {"rounds": 1, "threshold": 0.5, "balance": False, "round_steps": "epochs", "keep": "last"}
    res = finetune(_cfg(data, tmp_path / "ada", data={"unlabeled": str(unl)}, self_training=st,
                        method={"name": "adalora"}, train={"max_steps": 4, "epochs": 2, "eval_every": 4}),
                   progress=False)
    r1 = res.artifact.manifest.model_extra["self_training"]["rounds_run"][1]
    adapter = Path(res.artifact.manifest.adapter_artifact)
    peft = json.loads((adapter / "adapter_config.json").read_text())
    assert r1["steps"] > 4 and peft["total_step"] == r1["steps"]


@pytest.mark.parametrize(("raw", "message"), [
    ({"self_training": {"rounds": 1}}, "self_training read unlabelled texts: set data.unlabeled"),
    ({"data": {"path": "d.csv", "unlabeled": "u.txt"}}, "data.unlabeled is read only by self_training or "
     "domain_pretrain"),
    ({"data": {"path": "d.txt", "unlabeled": "u.txt"}, "task": "causal-lm", "domain_pretrain": {"steps": 2}},
     "apply to classifiers"),
])
def test_config_refuses_unlabeled_without_its_use(raw, message):
    with pytest.raises(ValueError, match=message):
        FinetuneConfig.model_validate({"data": {"path": "d.csv"}, **raw})


def test_unlabeled_reader(tmp_path):
    txt = tmp_path / "u.txt"
    txt.write_text("one\n\n  \ntwo\n", encoding="utf-8")
    assert read_unlabeled(DataConfig(path="d.csv", unlabeled=str(txt)))[0] == ["one", "two"]
    table = write_csv(tmp_path / "u.csv", [("x", "first"), ("y", "second")], header=("id", "review"))
    texts, info = read_unlabeled(DataConfig(path="d.csv", unlabeled=str(table), text_column="review"))
    assert texts == ["first", "second"] and info["column"] == "review"
    bad = tmp_path / "latin.txt"
    bad.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(UserError, match="line 1 has bytes that are not valid utf-8"):
        read_unlabeled(DataConfig(path="d.csv", unlabeled=str(bad)))
    assert read_unlabeled(DataConfig(path="d.csv", unlabeled=str(bad), encoding="latin-1"))[0] == ["café"]
    with pytest.raises(UserError, match="not a file"):
        read_unlabeled(DataConfig(path="d.csv", unlabeled=str(tmp_path)))


@pytest.mark.parametrize(("content", "message"), [
    (None, "u.txt: no such file (the unlabelled texts) (check the --unlabeled path)"),
    ("\n \n", "u.txt: no unlabelled texts (the file is empty or blank) (give a file with one text per "
     "line, or a table with a text column)"),
])
def test_bad_unlabeled_file_is_one_line_exit_2(content, message, csv_data, tmp_path):
    u = tmp_path / "u.txt"
    if content is not None:
        u.write_text(content)
    proc = run_cli("finetune", "--model", "tiny-bert", "--data", str(csv_data), "--unlabeled", str(u),
                   "--self-training-rounds", "1", "--max-steps", "2", "--no-progress")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and lines[0].endswith(message), lines[0]


def _setup(tmp_path):
    data = write_csv(tmp_path / "l.csv", sentiment_rows(120))
    unl = tmp_path / "u.txt"
    unl.write_text("\n".join(t for t, _ in sentiment_rows(60, seed=9)) + "\n")
    return data, unl


def _cfg(path, out, **extra):
    return FinetuneConfig.model_validate({
        "model": "tiny-bert", "data": {"path": str(path), "max_length": 32, **extra.pop("data", {})},
        "train": {"max_steps": 72, "batch_size": 8, "lr": 3e-3, "eval_every": 12, "precision": "fp32",
                  **extra.pop("train", {})},
        "output": str(out), **extra})


def test_pseudo_label_counts_match_a_hand_count(tmp_path):
    data, unl = _setup(tmp_path)
    st = {"rounds": 2, "threshold": 0.62, "balance": False}
    res = finetune(_cfg(data, tmp_path / "st", data={"unlabeled": str(unl)}, self_training=st), progress=False)
    rec = res.artifact.manifest.model_extra["self_training"]
    rounds = rec["rounds_run"]
    # round 1's model is sure of no unlabelled text at 0.62 (measured), so round 2 does not run
    assert [r["round"] for r in rounds] == [0, 1] and rounds[0]["pseudo_labelled"] == 0
    assert rec["stopped_because"].startswith("round 2: no unlabelled text reached the threshold 0.62")

    # Round 0 is the plain fine-tune: its saved model, scored by hand, gives round 1's pseudo-labels.
    plain = finetune(_cfg(data, tmp_path / "plain"), progress=False)
    assert plain.metrics["dev_accuracy"] == rounds[0]["dev_accuracy"]
    from supremum.backends import load

    model, tok = load(plain.artifact)
    from supremum.infer import predict_logits

    texts = unl.read_text().splitlines()
    probs = softmax(predict_logits(model, tok(texts, truncation=True, max_length=32)["input_ids"],
                                   tok.pad_token_id))
    above = probs.max(1) >= 0.62
    hand = {name: int(((probs.argmax(1) == i) & above).sum()) for i, name in enumerate(["neg", "pos"])}
    assert rounds[1]["per_class"] == hand and rounds[1]["pseudo_labelled"] == sum(hand.values()) > 0
    assert rounds[1]["above_threshold"] == int(above.sum())
    assert rounds[1]["min_confidence"] == pytest.approx(probs.max(1)[above].min(), abs=1e-6)
    assert all(r["min_confidence"] >= 0.62 for r in rounds[1:] if r["pseudo_labelled"])

    scores = [r["dev_accuracy"] for r in rounds]
    assert rec["kept_round"] == scores.index(max(scores))  # best, the earlier on a tie
    assert res.metrics["dev_accuracy"] == max(scores)
    assert res.artifact.metrics["training"]["self_training"]["kept_round"] == rec["kept_round"]
    np.testing.assert_allclose(logits(res.artifact), logits_fresh_process(res.artifact.path), atol=1e-6)


def test_a_round_with_nothing_to_add_ends_the_rounds_and_costs_are_every_rounds(tmp_path):
    """No text reaches threshold 1.0: round 1 would retrain on the labelled rows alone (the first
    training again, at its cost); the rounds stop and say why. train_seconds is what the whole
    run trained and scored, not the kept round's."""
    data, unl = _setup(tmp_path)
    st = {"rounds": 3, "threshold": 1.0}
    res = finetune(_cfg(data, tmp_path / "none", data={"unlabeled": str(unl)}, self_training=st), progress=False)
    rec = res.artifact.manifest.model_extra["self_training"]
    assert [r["round"] for r in rec["rounds_run"]] == [0] and rec["kept_round"] == 0
    assert rec["stopped_because"].startswith("round 1: no unlabelled text reached the threshold 1.0 (highest "
                                             "confidence 0.")
    assert rec["stopped_because"].endswith("); the rounds stopped there")
    assert res.metrics["train_seconds"] == pytest.approx(rec["rounds_run"][0]["train_seconds"]
                                                         + rec["scoring_seconds"], abs=2e-3)
    assert rec["scoring_seconds"] > 0

    two = finetune(_cfg(data, tmp_path / "two", data={"unlabeled": str(unl)},
                        self_training={"rounds": 2, "threshold": 0.55, "balance": False}), progress=False)
    rec2 = two.artifact.manifest.model_extra["self_training"]
    assert rec2["stopped_because"] is None and len(rec2["rounds_run"]) == 3
    each = [r["train_seconds"] for r in rec2["rounds_run"]]
    assert all(x > 0 for x in each)
    assert two.metrics["train_seconds"] == pytest.approx(sum(each) + rec2["scoring_seconds"], abs=2e-3)


def test_keep_last_and_balanced_rounds_with_a_fitted_method(tmp_path):
    """linear-probe has its own fit: the rounds run around it like around the training loop."""
    data, unl = _setup(tmp_path)
    cfg = FinetuneConfig.model_validate({
        "model": "tiny-bert", "data": {"path": str(data), "max_length": 32, "unlabeled": str(unl)},
        "method": "linear-probe", "self_training": {"rounds": 1, "threshold": 0.5, "keep": "last"},
        "output": str(tmp_path / "lp")})
    res = finetune(cfg, progress=False)
    rec = res.artifact.manifest.model_extra["self_training"]
    r1 = rec["rounds_run"][1]
    assert rec["kept_round"] == 1 and rec["kept_because"] == "last round" and r1["pseudo_labelled"] > 0
    assert r1["per_class"]["neg"] == r1["per_class"]["pos"] == r1["pseudo_labelled"] // 2
    assert res.metrics["dev_accuracy"] == r1["dev_accuracy"]


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-llama"])
def test_domain_pretraining_lowers_the_lm_loss(name, tmp_path):
    import torch
    from transformers import AutoModelForMaskedLM

    from supremum.models import load_model
    from supremum.train.domain import _collator, adapt, lm_loss

    texts = [t for t, _ in sentiment_rows(64, seed=5)]
    cfg = DomainPretrainConfig(steps=30, lr=2e-3, batch_size=16)
    rec = adapt(name, None, texts, cfg, 32, 0, ["neg", "pos"], tmp_path / "dom")
    assert rec["objective"] == ("masked-lm" if name == "tiny-bert" else "causal-lm")
    assert rec["loss_after"] < rec["loss_before"] - 0.1, rec
    assert json.loads((tmp_path / "dom" / "domain_pretrain.json").read_text()) == rec

    base, tok = load_model(name, "classification", label_names=["neg", "pos"])
    adapted, _ = load_model(str(tmp_path / "dom"), "classification", label_names=["neg", "pos"])
    emb = base.get_input_embeddings().weight
    assert not torch.equal(emb, adapted.get_input_embeddings().weight)  # the encoder moved
    if name == "tiny-bert":  # loss_before, recomputed: the base encoder under its MLM head, the same masks
        from supremum.models.tiny import build_tiny

        lm, _ = build_tiny(name, AutoModelForMaskedLM)
        lm.base_model.load_state_dict(base.base_model.state_dict(), strict=False)
        ids = tok(texts, truncation=True, max_length=32)["input_ids"]
        fixed = [_collator(tok, "masked-lm", cfg, 1)([{"input_ids": x} for x in ids[i: i + 16]])
                 for i in range(0, len(ids), 16)]
        assert lm_loss(lm, fixed, "masked-lm") == pytest.approx(rec["loss_before"], abs=1e-5)
        # the pooler, which masked-LM training does not touch, is the base model's
        assert torch.equal(base.bert.pooler.dense.weight, adapted.bert.pooler.dense.weight)


def test_domain_pretrained_adapter_artifacts_load_over_the_adapted_base(tmp_path):
    data, unl = _setup(tmp_path)
    out = tmp_path / "lora"
    cfg = _cfg(data, out, data={"unlabeled": str(unl)}, method={"name": "lora", "r": 4}, train={"max_steps": 8},
               domain_pretrain={"steps": 10, "lr": 1e-3, "batch_size": 16})
    res = finetune(cfg, progress=False)
    man = res.artifact.manifest
    dom = man.model_extra["domain_pretrain"]
    assert man.base_model == dom["dir"] == str((tmp_path / "lora-domain").resolve())
    assert dom["steps"] == 10 and dom["loss_after"] < dom["loss_before"]
    assert res.metrics["domain_pretrain"] == dom and man.config["domain_pretrain"]["steps"] == 10
    adapter = open_artifact(man.adapter_artifact)
    assert adapter.manifest.storage == "peft" and adapter.manifest.base_model == dom["dir"]
    here = logits(res.artifact)
    np.testing.assert_allclose(logits_fresh_process(res.artifact.path), here, atol=1e-6)
    np.testing.assert_allclose(logits_fresh_process(adapter.path), here, atol=1e-4)  # merged == unmerged


def test_cli_flags_set_the_config_and_the_run_prints_the_rounds(tmp_path):
    data, unl = _setup(tmp_path)
    out = tmp_path / "cli"
    proc = run_cli("finetune", "--model", "tiny-bert", "--data", str(data), "--unlabeled", str(unl),
                   "--self-training-rounds", "1", "--pseudo-threshold", "0.5", "--domain-pretrain-steps", "3",
                   "--max-steps", "4", "--max-length", "32", "--output", str(out), "--no-progress", check=True)
    cfg = json.loads((out / "manifest.json").read_text())["config"]
    assert cfg["self_training"]["rounds"] == 1 and cfg["self_training"]["threshold"] == 0.5
    assert cfg["domain_pretrain"]["steps"] == 3 and cfg["data"]["unlabeled"] == str(unl)
    assert "domain pretraining: 3 steps of masked-lm on 60 unlabelled texts" in proc.stdout
    # after 4 steps the model calls every text one class: balance adds none, and the rounds stop
    assert ("self-training: round 1: 60 texts reached the threshold 0.5, but a class had none and balance takes "
            "the same number from every class; the rounds stopped there") in proc.stdout
    assert "self-training round 0: 0 pseudo-labelled" in proc.stdout
    assert "self-training: kept round 0" in proc.stdout
    assert Path(str(out) + "-domain", "config.json").is_file()
