"""Optimizers, layer-wise LR decay, augmentation, adversarial training and robustness eval."""

import json

import pytest
import torch
from conftest import run_cli

from supremum.augment import AugmentConfig, augment, parse_perturb, perturb
from supremum.config import TrainConfig
from supremum.errors import UserError
from supremum.train.config import FinetuneConfig
from supremum.train.finetune import finetune
from supremum.train.optim import build_optimizer, layer_depth, param_groups


def cfg(data, method="full", **train):
    return FinetuneConfig(model={"name": "tiny-bert"}, data={"path": str(data)}, method={"name": method},
                          train={"max_steps": 8, "batch_size": 8, "lr": 3e-3, **train})


@pytest.mark.parametrize("opt", ["adam", "sgd", "rmsprop", "adafactor"])
def test_each_optimizer_trains(opt, csv_data):
    res = finetune(cfg(csv_data, optimizer=opt, lr=1e-2 if opt == "sgd" else 3e-3), progress=False)
    losses = [x["loss"] for x in res.metrics["loss_curve"]]
    assert all(map(lambda v: v == v, losses)) and res.metrics["steps"] == 8  # no NaN


def test_layer_decay_scales_by_depth():
    from supremum.models import load_model

    model, _ = load_model("tiny-bert", "classification", label_names=["a", "b"])
    assert layer_depth("bert.embeddings.word_embeddings.weight", 2) == 0
    assert layer_depth("bert.encoder.layer.1.output.dense.weight", 2) == 2
    assert layer_depth("classifier.weight", 2) == 3
    groups = param_groups(model, TrainConfig(lr=1.0, layer_decay=0.5))
    scales = {round(g["lr_scale"], 4) for g in groups}
    assert scales == {0.125, 0.25, 0.5, 1.0}
    opt = build_optimizer(model, TrainConfig(lr=1.0, layer_decay=0.5))
    from supremum.train.optim import set_lr

    set_lr(opt, 2e-4, 1.0)
    assert sorted({g["lr"] for g in opt.param_groups}) == pytest.approx([2.5e-5, 5e-5, 1e-4, 2e-4])
    with pytest.raises(ValueError, match="full fine-tuning only"):
        cfg("x.csv", method="lora", layer_decay=0.8)


def test_augmentation_adds_seeded_copies_to_train_only(csv_data):
    a = augment(["one two three four"], [1], AugmentConfig(delete=0.3, mask=0.3, copies=3, seed=1), "[MASK]")
    assert a == augment(["one two three four"], [1], AugmentConfig(delete=0.3, mask=0.3, copies=3, seed=1),
                        "[MASK]")
    assert len(a[0]) == 4 and a[1] == [1] * 4 and a[0][0] == "one two three four"
    res = finetune(cfg(csv_data, augment={"swap": 0.2, "mask": 0.1, "copies": 2}), progress=False)
    info = res.artifact.manifest.data
    assert info["augmented"]["added"] == 2 * info["sizes"]["train"]
    assert res.artifact.manifest.config["train"]["augment"]["copies"] == 2  # recorded
    assert res.metrics["train_size"] == info["sizes"]["train"]
    with pytest.raises(ValueError, match="at least one"):
        AugmentConfig()


@pytest.mark.parametrize("method", ["fgm", "pgd"])
def test_adversarial_training_adds_the_adversarial_gradient(method, csv_data):
    """Same seed, same batches: the adversarial run's weights differ from the plain run's, and
    the clean loss it reports for step 1 is the plain run's (same starting weights)."""
    plain = finetune(cfg(csv_data, max_steps=2, dropout=0.0), progress=False)
    adv = finetune(cfg(csv_data, max_steps=2, dropout=0.0, adversarial={"method": method, "epsilon": 0.5}),
                   progress=False)
    assert adv.metrics["loss_curve"][0]["loss"] == pytest.approx(plain.metrics["loss_curve"][0]["loss"], rel=1e-5)
    from safetensors.torch import load_file

    a = load_file(str(plain.artifact.path / "model.safetensors"))
    b = load_file(str(adv.artifact.path / "model.safetensors"))
    assert any(not torch.allclose(a[k], b[k]) for k in a)


def test_adversarial_works_with_peft_methods(csv_data):
    res = finetune(cfg(csv_data, method="prompt", adversarial={"method": "pgd", "steps": 2}), progress=False)
    assert res.metrics["steps"] == 8


def test_perturbations_are_seeded_and_parsed():
    texts = ["the quick brown fox jumps", "over the lazy dog"]
    assert perturb(texts, "typo", 0.3, 0) == perturb(texts, "typo", 0.3, 0) != perturb(texts, "typo", 0.3, 1)
    assert perturb(texts, "case", 1.0, 0) == [t.upper() for t in texts]
    assert perturb(texts[:1], "drop", 0.5, 3) == perturb(texts, "drop", 0.5, 3)[:1]  # per-text generator
    assert parse_perturb("typo:0.05,drop:0.1,case") == [("typo", 0.05), ("drop", 0.1), ("case", 1.0)]
    for bad, msg in (("typo:x", "not a number"), ("blur", "unknown perturbation"), ("drop:2", "in \\(0, 1\\]")):
        with pytest.raises(UserError, match=msg):
            parse_perturb(bad)


def test_eval_perturb_reports_accuracy_next_to_clean(csv_data, tmp_path):
    art = tmp_path / "a"
    run_cli("finetune", "--model", "tiny-bert", "--data", str(csv_data), "--max-steps", "10", "--lr", "3e-3",
            "--output", str(art), "--no-progress", check=True)
    m = json.loads(run_cli("eval", str(art), "--no-speed", "--perturb", "typo:0.2,drop:0.3,case", "--json",
                           check=True).stdout)
    rob = m["robustness"]
    assert set(rob) == {"method", "typo:0.2", "drop:0.3", "case:1"}
    for k in ("typo:0.2", "drop:0.3"):
        assert rob[k]["delta_pt"] == pytest.approx(100 * (rob[k]["accuracy"] - m["accuracy"]))
    human = run_cli("eval", str(art), "--no-speed", "--perturb", "typo:0.2", check=True).stdout
    assert "robustness" in human and "typo:0.2" in human
    bad = run_cli("eval", str(art), "--perturb", "blur")
    assert bad.returncode == 2 and "unknown perturbation 'blur'" in bad.stderr
