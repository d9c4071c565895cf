import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from supremum.store import Store
from supremum.train.config import FinetuneConfig
from supremum.train.finetune import finetune


def cfg(data, **train):
    method = train.pop("method", {"name": "full"})
    return FinetuneConfig(model={"name": "tiny-bert"}, data={"path": str(data)}, method=method,
                          train={"lr": 3e-3, "batch_size": 8, "epochs": 6, **train})


def weights(art_path) -> dict:
    return load_file(Path(art_path) / "model.safetensors")


def test_full_finetune_learns_and_records(csv_data):
    res = finetune(cfg(csv_data), progress=False)
    m = res.metrics
    assert m["dev_accuracy"] >= 0.9, m["evals"]
    assert m["trainable_params"] == m["total_params"]
    assert m["loss_curve"][-1]["loss"] < m["loss_curve"][0]["loss"]
    run = Store().get_run(res.run_id)
    assert run["status"] == "finished" and run["artifact_id"] == res.artifact.id
    assert run["machine"]["cores"] >= 1


def test_lora_trains_only_adapter_and_head_then_merges(csv_data):
    from supremum.models import load_model

    res = finetune(cfg(csv_data, lr=1e-2, max_steps=30, method={"name": "lora", "r": 4}), progress=False)
    assert 0 < res.metrics["trainable_fraction"] < 0.5
    assert res.artifact.manifest.storage == "full"  # merged into plain weights
    base, _ = load_model("tiny-bert", label_names=["neg", "pos"])
    w = weights(res.artifact.path)
    emb = "bert.embeddings.word_embeddings.weight"
    assert torch.equal(w[emb], base.state_dict()[emb])  # frozen
    q = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(w[q], base.state_dict()[q])  # the low-rank update was merged in


def test_same_seed_same_weights(csv_data):
    a = finetune(cfg(csv_data, max_steps=8), progress=False)
    b = finetune(cfg(csv_data, max_steps=8), progress=False)
    wa, wb = weights(a.artifact.path), weights(b.artifact.path)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_grad_accumulation_matches_large_batch(csv_data):
    # fp32: bf16 autocast (auto picks it on CPUs with avx512_bf16) rounds batches of 16 and of 8
    # differently, far above the summation-order differences asserted here
    big = finetune(cfg(csv_data, max_steps=5, batch_size=16, dropout=0.0, group_by_length=False,
                       precision="fp32"), progress=False)
    acc = finetune(cfg(csv_data, max_steps=5, batch_size=8, grad_accum=2, dropout=0.0,
                       group_by_length=False, precision="fp32"), progress=False)
    wa, wb = weights(big.artifact.path), weights(acc.artifact.path)
    # Same examples per step in the same order; only float summation order differs.
    assert all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)


def test_early_stopping_stops(csv_data):
    res = finetune(cfg(csv_data, lr=1e-9, epochs=50, eval_every=2, early_stopping=2), progress=False)
    assert res.metrics["stopped_early"] and res.metrics["steps"] == 6  # best at 2, then 4 and 6


def test_sgd_cosine_label_smoothing_runs(csv_data):
    res = finetune(cfg(csv_data, optimizer="sgd", lr=0.1, scheduler="cosine", label_smoothing=0.1,
                       max_steps=6), progress=False)
    assert res.metrics["steps"] == 6


def _cli(args, home, env=None):
    env = {**(env or os.environ), "SUPREMUM_HOME": str(home)}
    return subprocess.Popen([sys.executable, "-m", "supremum", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("method", ["full", "lora"])
def test_resume_after_sigkill_reaches_identical_weights(csv_data, tmp_path, method):
    from faults import fault_env

    common = ["finetune", "--model", "tiny-bert", "--data", str(csv_data), "--method", method,
              "--max-steps", "60", "--batch-size", "8", "--checkpoint-every", "7",
              "--no-progress", "train.eval_every=10", "train.threads=1"]
    ref = _cli([*common, "--output", str(tmp_path / "ref")], tmp_path / "h1")
    assert ref.wait(timeout=300) == 0, ref.stderr.read()

    home = tmp_path / "h2"
    out = ["--output", str(tmp_path / "resumed")]
    # The run kills itself right after its 10th update: past the checkpoint at step 7, whatever
    # the speed of the machine.
    proc = _cli([*common, *out], home, fault_env(dict(os.environ), "step", 10))
    proc.wait(timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    state = json.loads(next(home.glob("checkpoints/*/last/state.json")).read_text())
    assert state["step"] == 7
    statuses = {r["status"] for r in Store(home).runs()}
    assert statuses == {"resumable"}
    res = _cli([*common, *out, "--resume"], home)
    assert res.wait(timeout=300) == 0, res.stderr.read()
    wa, wb = weights(tmp_path / "ref"), weights(tmp_path / "resumed")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    runs = Store(home).runs()
    assert len(runs) == 1 and runs[0]["status"] == "finished"


def test_decoder_model_classifies_and_reloads(csv_data, tmp_path):
    from supremum.artifact import load_artifact_model

    c = FinetuneConfig(model={"name": "tiny-llama"}, data={"path": str(csv_data)},
                       train={"max_steps": 5, "lr": 3e-3}, output=str(tmp_path / "llama"))
    res = finetune(c, progress=False)
    model, tok = load_artifact_model(res.artifact)
    assert type(model).__name__ == "LlamaForSequenceClassification" and tok.pad_token is not None


@pytest.mark.parametrize("every", [None, 5])
def test_resume_with_no_checkpoint_trains_from_the_start_and_says_so(csv_data, capsys, every):
    res = finetune(cfg(csv_data, max_steps=2, checkpoint_every=every, precision="fp32"), resume=True,
                   progress=False)
    assert res.metrics["steps"] == 2
    err = capsys.readouterr().err
    if every is None:
        assert ("resume: nothing to resume, this run writes no checkpoints (set --checkpoint-every N); "
                "training from the start") in err
    else:
        assert "resume: no checkpoint of this configuration under " in err
        assert "(a first run, or a changed setting); training from the start" in err
