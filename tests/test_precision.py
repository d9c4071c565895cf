"""train.precision: auto resolved from the machine fingerprint, the dev probe's fall-back to fp32,
the record of the decision, old configs' hashes and meaning, and fp16 refused on the CPU."""

import pytest
import torch
from conftest import run_cli
from pydantic import ValidationError

from supremum import machine
from supremum.config import TrainConfig
from supremum.hashing import content_hash
from supremum.store import Store
from supremum.train import precision
from supremum.train.config import FinetuneConfig
from supremum.train.finetune import finetune
from supremum.train.loop import Split

CPU_BF16 = {"isa": ["avx2", "avx512f", "avx512_bf16", "fma"]}
CPU_AMX = {"isa": ["avx512f", "amx_bf16", "amx_tile"]}
CPU_PLAIN = {"isa": ["avx2", "fma"]}


def test_old_dumps_keep_their_hash_and_meaning():
    # computed on main before train.precision existed (bf16 was a bool defaulting to False)
    assert content_hash(TrainConfig(bf16=False).model_dump(mode="json")) == "79c16c53425c90fa"
    assert content_hash(TrainConfig(bf16=True).model_dump(mode="json")) == "8147746d7f73e4aa"
    old = TrainConfig(bf16=False).model_dump(mode="json")
    assert TrainConfig.model_validate(old).request == "fp32"
    assert TrainConfig(bf16=True).request == "bf16"
    assert TrainConfig().request == "auto"
    assert "bf16" not in TrainConfig().model_dump() and "precision" not in TrainConfig().model_dump()
    assert content_hash(TrainConfig().model_dump(mode="json")) != "79c16c53425c90fa"  # auto is not fp32
    assert TrainConfig(precision="bf16", bf16=True).request == "bf16"


def test_contradicting_bf16_and_precision_is_refused():
    with pytest.raises(ValidationError, match="train.bf16=true contradicts train.precision=fp32: set only "
                                              r"train.precision \(--precision\)"):
        TrainConfig(bf16=True, precision="fp32")


def test_auto_resolves_from_the_fingerprint():
    assert precision.choose("auto", CPU_BF16, "cpu") == precision.Precision(
        "auto", "bf16", "auto: CPU has avx512_bf16")
    assert precision.choose("auto", CPU_AMX, "cpu").resolved == "bf16"
    assert precision.choose("auto", CPU_PLAIN, "cpu") == precision.Precision(
        "auto", "fp32", "auto: cpu has no native bf16 (it would be emulated)")
    ampere = {**CPU_PLAIN, "gpus": [{"index": 0, "name": "A100", "capability": "8.0"}]}
    turing = {**CPU_BF16, "gpus": [{"index": 0, "name": "T4", "capability": "7.5"}]}
    assert precision.choose("auto", ampere, "cuda", 0).reason == (
        "auto: A100 has native bf16 (compute capability 8.0)")
    assert precision.choose("auto", turing, "cuda", 0).resolved == "fp32"
    assert precision.choose("fp32", CPU_BF16, "cpu") == precision.Precision("fp32", "fp32", "as configured")


def test_fp16_is_refused_on_the_cpu():
    with pytest.raises(precision.UserError, match="train.precision fp16 trains on CUDA GPUs only"):
        precision.choose("fp16", CPU_BF16, "cpu")


def test_cli_fp16_on_cpu_exits_2_with_one_line(csv_data):
    p = run_cli("finetune", "--model", "tiny-bert", "--data", str(csv_data), "--precision", "fp16",
                "--device", "cpu", "--no-progress")
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip() == ("error: --precision fp16 trains on CUDA GPUs only, and this run is on cpu "
                                "(no native fp16 kernels for training there) (use --precision bf16 (fast with "
                                "avx512_bf16/AMX) or --precision fp32)")
    p = run_cli("finetune", "--model", "tiny-bert", "--data", str(csv_data), "train.precision=fp16",
                "--device", "cpu", "--no-progress")  # given as a key: named as the key
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("error: train.precision fp16 trains on CUDA GPUs only"), p.stderr


def _bf16_sensitive_classifier():
    """tiny-bert whose two logits differ by 1e-4 of their size, which is positive: fp32 tells them
    apart (class 1), bf16's 8-bit mantissa rounds both heads to the same numbers (a tie: class 0)."""
    from supremum.models import load_model

    torch.manual_seed(0)
    model, tok = load_model("tiny-bert", label_names=["a", "b"])
    head = model.classifier
    with torch.no_grad():
        head.weight[1] = head.weight[0] * (1 + 1e-4)
        head.bias[0] = 4.0
        head.bias[1] = 4.0 * (1 + 1e-4)
    return model.eval(), tok


def test_probe_falls_back_to_fp32_when_bf16_changes_predictions():
    model, tok = _bf16_sensitive_classifier()
    texts = [f"text number {i} is {'good' if i % 2 else 'bad'}" for i in range(64)]
    dev = Split([tok(t)["input_ids"] for t in texts], [i % 2 for i in range(64)])
    chosen = precision.choose("auto", CPU_BF16, "cpu")
    got = precision.probe(chosen, model, dev, tok.pad_token_id, torch.device("cpu"))
    assert got.resolved == "fp32"
    assert got.reason.startswith("auto: CPU has avx512_bf16, but bf16 probe on 64 dev examples: ")
    assert got.reason.endswith("0.0% argmax agreement with fp32 (least 99%): fell back to fp32")
    # an ordinary head agrees, and bf16 stands
    model.classifier.reset_parameters()
    kept = precision.probe(chosen, model, dev, tok.pad_token_id, torch.device("cpu"))
    assert kept.resolved == "bf16" and "100.0% argmax agreement" in kept.reason
    # explicit requests are not probed
    assert precision.probe(precision.choose("bf16", CPU_PLAIN, "cpu"), model, dev, 0, None).resolved == "bf16"


@pytest.mark.parametrize("fp,want", [(CPU_BF16, "bf16"), (CPU_PLAIN, "fp32")])
def test_auto_is_recorded_in_the_run(csv_data, monkeypatch, capsys, fp, want):
    monkeypatch.setattr(machine, "fingerprint", lambda: {**fp, "cores": 2})
    cfg = FinetuneConfig(model={"name": "tiny-bert"}, data={"path": str(csv_data)},
                         train={"lr": 3e-3, "batch_size": 8, "max_steps": 3})
    res = finetune(cfg, progress=False)
    rec = res.metrics["precision"]
    assert (rec["requested"], rec["resolved"]) == ("auto", want)
    assert Store().get_run(res.run_id)["metrics"]["precision"] == rec
    assert res.artifact.metrics["training"]["precision"] == rec
    assert f"precision: {want} (auto: " in capsys.readouterr().err
    if want == "bf16":
        assert "bf16 probe on 24 dev examples" in rec["reason"]


def test_estimate_uses_past_runs_of_the_precision_the_run_resolves_to(monkeypatch):
    from supremum import estimate

    def row(rate, bf16, recorded=None):
        metrics = {"train_samples_per_s": rate, **({"precision": {"resolved": recorded}} if recorded else {})}
        train = {} if bf16 is None else {"bf16": bf16}
        return {"kind": "finetune", "config": {"model": {"name": "tiny-bert"}, "method": {"name": "full"},
                                               "train": train}, "metrics": metrics}

    runs = [row(200.0, True), row(100.0, False), row(180.0, None, "bf16"), row(90.0, None, "fp32")]
    auto = FinetuneConfig(model="tiny-bert", data={"path": "x.csv"})
    fp32 = FinetuneConfig(model="tiny-bert", data={"path": "x.csv"}, train={"precision": "fp32"})
    monkeypatch.setattr(estimate, "fingerprint", lambda: CPU_BF16)
    assert estimate.training_rate(auto, runs, "full") == (190.0, "median of 2 past bf16 full fine-tunes of "
                                                                 "tiny-bert here")
    assert estimate.training_rate(fp32, runs, "full") == (95.0, "median of 2 past fp32 full fine-tunes of "
                                                                "tiny-bert here")
    assert estimate.training_rate(fp32, runs, "lora") == (95.0, "median of 2 past fp32 other-method fine-tunes "
                                                                "of tiny-bert here")  # said, not passed off
    monkeypatch.setattr(estimate, "fingerprint", lambda: CPU_PLAIN)
    assert estimate.training_rate(auto, runs, "full")[0] == 95.0
