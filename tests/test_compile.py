"""train.compile: the compiled model trains to the eager model's losses, without a recompile per
sequence length; resumable runs refuse it."""

import pytest
from conftest import run_cli
from pydantic import ValidationError

from supremum.config import TrainConfig
from supremum.hashing import content_hash
from supremum.train.config import FinetuneConfig
from supremum.train.finetune import finetune


def _run(data, compiled: bool):
    # dropout off: inductor draws dropout masks from its own generator, not eager's
    cfg = FinetuneConfig(model={"name": "tiny-bert"}, data={"path": str(data)},
                         train={"lr": 3e-3, "batch_size": 8, "max_steps": 20, "dropout": 0.0,
                                "precision": "fp32", "compile": compiled, "eval_every": 20})
    return finetune(cfg, progress=False).metrics


@pytest.mark.slow
def test_compiled_losses_equal_eager_over_20_steps(csv_data):
    eager, compiled = _run(csv_data, False), _run(csv_data, True)
    a = [x["loss"] for x in eager["loss_curve"]]
    b = [x["loss"] for x in compiled["loss_curve"]]
    assert len(a) == len(b) == 20
    assert b == pytest.approx(a, rel=1e-4, abs=1e-5)
    assert compiled["dev_accuracy"] == eager["dev_accuracy"]
    # length-grouped batches of many lengths, one dynamic-shape graph (+1 for the loss's graph break
    # at most), not one per length
    assert 1 <= compiled["compile"]["graphs"] <= 2, compiled["compile"]
    assert "compile" not in eager


def test_compile_leaves_hashes_and_refuses_checkpoints():
    assert content_hash(TrainConfig(bf16=False, compile=False).model_dump(mode="json")) == "79c16c53425c90fa"
    with pytest.raises(ValidationError, match="train.compile does not go with train.checkpoint_every: a resumed "
                                              "run recompiles"):
        TrainConfig(compile=True, checkpoint_every=5)


def test_cli_compile_with_checkpoints_is_one_line_naming_the_flags(csv_data):
    """A check across keys names the flags typed, without pydantic's framing or a dump of the section."""
    p = run_cli("finetune", "--model", "tiny-bert", "--data", str(csv_data), "--compile",
                "--checkpoint-every", "2")
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip() == (
        "error: command line: --compile does not go with --checkpoint-every: a resumed run recompiles, and its "
        "kernels are not guaranteed to give the bits of the run before the stop; drop --compile for resumable "
        "runs (see `supremum finetune --help`)")
    p = run_cli("finetune", "--model", "tiny-bert", "--data", str(csv_data), "train.compile=true",
                "--checkpoint-every", "2")  # a key given as KEY=VALUE keeps its name
    assert p.returncode == 2 and p.stderr.startswith("error: command line: train.compile does not go with "
                                                     "--checkpoint-every: "), p.stderr
