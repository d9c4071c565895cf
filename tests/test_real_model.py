"""A short run on the real packaged model and real data: the defaults must visibly learn."""

import os
from pathlib import Path

import pytest

from supremum.train.config import FinetuneConfig
from supremum.train.finetune import finetune

DATA = Path(os.environ.get("SUPREMUM_DATA", "")) / "sst2"
pytestmark = pytest.mark.skipif(not (DATA / "train.tsv").exists(), reason="set SUPREMUM_DATA to the shared data")


@pytest.mark.parametrize("method", ["lora", "full"])
def test_minilm_default_hyperparameters_learn_in_60_steps(method):
    import torch

    torch.set_num_threads(2)
    cfg = FinetuneConfig(model={"name": "minilm-l6"}, data={"path": str(DATA)}, method={"name": method},
                         train={"max_steps": 60, "bf16": True})
    res = finetune(cfg, progress=False)
    # Chance is 50%; 60 steps (1,920 examples) at the default learning rate reach ~80%.
    assert res.metrics["dev_accuracy"] >= 0.7, res.metrics["evals"]
