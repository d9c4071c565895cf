"""--device: resolution, one-line errors for devices that are not there, tensors on the configured
device in the training loop, evaluation and latency, the distributed backend, and the frontier's
machine naming for GPU measurements."""

import json

import pytest
import torch
from conftest import run_cli, sentiment_rows, write_csv

from supremum import device
from supremum.errors import UserError

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")


@no_cuda
def test_auto_is_the_cpu_without_cuda():
    assert device.resolve("auto") == torch.device("cpu")
    assert device.resolve("cpu") == torch.device("cpu")


@no_cuda
@pytest.mark.parametrize("spec", ["cuda", "cuda:1"])
def test_cuda_without_cuda_is_a_user_error(spec):
    with pytest.raises(UserError) as e:
        device.resolve(spec)
    assert e.value.message == f"--device {spec}: no CUDA device visible (this torch is a CPU-only build)"


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "CPU", ""])
def test_unknown_device_names_are_refused(spec):
    with pytest.raises(ValueError, match="is not one of auto, cpu, cuda, cuda:N, mps"):
        device.check_spec(spec)


def test_distributed_backend_follows_the_tensors():
    assert device.distributed_backend(torch.device("cpu")) == "gloo"
    assert device.distributed_backend(torch.device("cuda", 0)) == "nccl"


@no_cuda
def test_finetune_device_cuda_is_one_line_exit_2(tmp_path):
    data = write_csv(tmp_path / "d.csv", sentiment_rows(40))
    r = run_cli("finetune", "--model", "tiny-bert", "--data", str(data), "--device", "cuda", "--max-steps", "1")
    assert r.returncode == 2
    assert r.stderr.strip() == ("error: --device cuda: no CUDA device visible (this torch is a CPU-only build) "
                                "(use --device cpu (or auto), or run on a machine with an NVIDIA GPU and a CUDA "
                                "build of torch)")
    r = run_cli("finetune", "--model", "tiny-bert", "--data", str(data), "--device", "gpu", "--max-steps", "1")
    assert r.returncode == 2 and "'gpu' is not one of auto, cpu, cuda, cuda:N, mps" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_device_is_not_in_the_hash_when_left_at_auto():
    from supremum.config import TrainConfig

    assert "device" not in TrainConfig().model_dump()
    assert TrainConfig(device="cpu").model_dump()["device"] == "cpu"


def _tiny_classifier():
    from supremum.models.loading import load_model

    return load_model("tiny-bert", label_names=["negative", "positive"])


def test_training_loop_and_inference_get_tensors_on_the_configured_device():
    """A forward pre-hook (a spy on the real model) records the device of every input the
    training loop and the dev evaluation feed it; the model is back on the CPU afterwards."""
    from supremum.config import TrainConfig
    from supremum.train.loop import Split, train

    model, tok = _tiny_classifier()
    seen: list[torch.device] = []
    model.register_forward_pre_hook(lambda m, args, kw: seen.append(kw["input_ids"].device), with_kwargs=True)
    ids = [tok(t)["input_ids"] for t, _ in sentiment_rows(16)]
    split = Split(ids, [int(y == "positive") for _, y in sentiment_rows(16)])
    cfg = TrainConfig(max_steps=2, batch_size=8, lr=1e-3, device="cpu", eval_every=1)
    train(model, split, split, cfg, tok.pad_token_id)
    assert len(seen) >= 4 and set(seen) == {torch.device("cpu")}
    assert device.of(model) == torch.device("cpu")


def test_latency_records_the_device(tmp_path):
    from supremum.evaluate.speed import measure_cost

    model, tok = _tiny_classifier()
    cost = measure_cost(model, tok, ["a fine film", "dull"], 32, 1, 3)
    assert cost["device"] == "cpu" and "cuda_max_memory_allocated_mb" not in cost


def test_eval_records_the_device_and_refuses_one_not_there(tmp_path):
    data = write_csv(tmp_path / "d.csv", sentiment_rows(60))
    run_cli("finetune", "--model", "tiny-bert", "--data", str(data), "--max-steps", "2", "--output",
            str(tmp_path / "a"), "--no-progress", check=True)
    r = run_cli("eval", str(tmp_path / "a"), "--no-speed", "--device", "cpu", "--json", check=True)
    assert json.loads(r.stdout)["device"] == "cpu"
    if not torch.cuda.is_available():
        r = run_cli("eval", str(tmp_path / "a"), "--no-speed", "--device", "cuda:0")
        assert r.returncode == 2 and r.stderr.startswith("error: --device cuda:0: no CUDA device visible")


def test_frontier_names_the_gpu_a_row_was_measured_on():
    from supremum.frontier import machine_of

    fp = {"cpu": "AMD EPYC", "gpus": [{"index": 0, "name": "NVIDIA H200", "memory_gib": 139.8}]}
    assert machine_of({"machine": fp, "device": "cuda:0"}, {}) == "NVIDIA H200 (AMD EPYC)"
    assert machine_of({"machine": fp, "device": "cpu"}, {}) == "AMD EPYC"
    assert machine_of({"machine": {"cpu": "AMD EPYC"}}, {}) == "AMD EPYC"  # records from before --device


@pytest.mark.parametrize("method", ["full", "lora", "prompt", "ptuning"])
def test_gradient_checkpointing_gives_the_same_losses(method):
    """Recomputing activations (dropout replayed) changes memory, not the numbers: 3 steps of the
    real loop with and without it give the same losses."""
    from supremum.train.config import FinetuneConfig
    from supremum.train.loop import Split, train
    from supremum.train.methods import METHODS

    losses = []
    for ckpt in (False, True):
        torch.manual_seed(0)
        model, tok = _tiny_classifier()
        cfg = FinetuneConfig(data={"path": "x.csv"}, method={"name": method},
                             train={"max_steps": 3, "batch_size": 8, "gradient_checkpointing": ckpt})
        model = METHODS[method].apply(model, cfg.method, 3)
        ids = [tok(t)["input_ids"] for t, _ in sentiment_rows(16)]
        res, _ = train(model, Split(ids, [int(y == "positive") for _, y in sentiment_rows(16)]), None, cfg.train,
                       tok.pad_token_id)
        losses.append([r["loss"] for r in res.state.log])
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        assert inner.is_gradient_checkpointing == ckpt
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    assert "gradient_checkpointing" not in FinetuneConfig(data={"path": "x.csv"}).train.model_dump()


@pytest.mark.parametrize("model", ["tiny-bert", "tiny-llama"])
def test_prefix_tuning_refuses_gradient_checkpointing(tmp_path, model):
    """Checkpointed layers drop the cache that carries the prefix (the first step failed on a
    size mismatch): the recipe is refused before any model loads."""
    data = write_csv(tmp_path / "train.csv", sentiment_rows(20))
    r = run_cli("finetune", "--model", model, "--data", str(data), "--method", "prefix", "--max-steps", "3",
                "--gradient-checkpointing")
    assert r.returncode == 2 and r.stderr.splitlines() == [
        "error: command line: --gradient-checkpointing does not work with method prefix: its learned "
        "keys/values are passed as the layers' cache, which checkpointed layers drop; drop "
        "--gradient-checkpointing or use method prompt, ptuning or lora (see `supremum finetune --help`)"]


def test_a_resumed_run_names_a_device_change():
    from supremum.train.finetune import _device_note
    from supremum.train.state import TrainState

    assert _device_note(["cpu"]) == {}
    assert _device_note(["cuda:0", "cpu"]) == {"device_note": "resumed on cpu; its checkpoint was written on "
                                               "cuda:0 (same weights and optimizer state; not bit-identical to "
                                               "an uninterrupted run)"}
    assert TrainState.from_json({"step": 3}).devices == []  # a checkpoint from before --device


def test_eval_inference_latency_and_serve_feed_tensors_on_the_configured_device(tmp_path):
    """A global forward pre-hook (a spy on the real modules) records the device of every token-id
    tensor an embedding layer receives from eval's inference, the latency measurement and a served
    /v1/classify request placed with --device cpu."""
    from fastapi.testclient import TestClient

    from supremum.artifact import open_artifact, save_artifact
    from supremum.evaluate.speed import measure_cost
    from supremum.infer import predict_logits
    from supremum.serve import ServeConfig
    from supremum.serve.app import create_app

    model, tok = _tiny_classifier()
    save_artifact(model, tok, tmp_path / "a", task="text-classification", label_names=["negative", "positive"],
                  base_model="tiny-bert", config={})
    seen: list[torch.device] = []

    def spy(module, args):
        if isinstance(module, torch.nn.Embedding) and args:
            seen.append(args[0].device)

    hook = torch.nn.modules.module.register_module_forward_pre_hook(spy)
    try:
        placed = device.place(model, "cpu")
        predict_logits(placed, [tok("a fine film")["input_ids"]], tok.pad_token_id)
        measure_cost(placed, tok, ["a fine film"], 32, 1, 3)
        n = len(seen)
        with TestClient(create_app(open_artifact(tmp_path / "a"), ServeConfig(device="cpu"))) as client:
            assert client.post("/v1/classify", json={"texts": ["a fine film"]}).status_code == 200
        assert len(seen) > n  # the server's forward passes were seen too
    finally:
        hook.remove()
    assert seen and set(seen) == {torch.device("cpu")}
    with pytest.raises(ValueError, match="is not one of"):
        ServeConfig(device="gpu")
