"""Data-parallel fine-tuning through torchrun (gloo on CPU): equivalence with one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from safetensors.numpy import load_file

from supremum.store import Store

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="torchrun with gloo is tested on Linux")


def _finetune(tmp_path, out: str, extra: list[str]):
    env = {**os.environ, "SUPREMUM_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "supremum", "finetune", "--model", "tiny-bert", "--data", str(tmp_path / "d.csv"),
           "--max-steps", "6", "--lr", "3e-3", "--seed", "3", "--no-progress", "--json", "--output",
           str(tmp_path / out), *extra, "train.dropout=0", "train.keep_best=false", "train.threads=1"]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout[p.stdout.index("{"):])


@pytest.fixture
def data(tmp_path):
    words = ["good", "bad", "fine", "awful", "great", "poor", "nice", "dull"]
    rows = [f"{words[i % 8]} movie number {i} {'really ' * (i % 5)},{'pos' if i % 2 == 0 else 'neg'}"
            for i in range(80)]
    (tmp_path / "d.csv").write_text("text,label\n" + "\n".join(rows) + "\n")
    return tmp_path


def test_two_processes_at_batch_16_equal_one_process_at_batch_32(data):
    one = _finetune(data, "one", ["--batch-size", "32"])
    two = _finetune(data, "two", ["--batch-size", "16", "--nproc", "2"])
    l1 = [x["loss"] for x in one["metrics"]["loss_curve"]]
    l2 = [x["loss"] for x in two["metrics"]["loss_curve"]]
    assert len(l1) == len(l2) == 6
    # Stated tolerance: the same global batches; the two ranks pad their halves to their own
    # lengths and gloo sums gradients in another order, so agreement is to float32 rounding.
    assert l1 == pytest.approx(l2, rel=1e-4, abs=1e-5)
    assert max(l1) - min(l1) > 1e-4  # the weights moved: not a trivial agreement of two idle runs
    w1 = load_file(str(data / "one" / "model.safetensors"))
    w2 = load_file(str(data / "two" / "model.safetensors"))
    assert w1.keys() == w2.keys()
    for k in w1:
        assert abs(w1[k] - w2[k]).max() < 2e-5, k
    # Only rank 0 wrote: one artifact directory and one finished fine-tune row per run.
    rows = [r for r in Store(data / "home").runs() if r["kind"] == "finetune"]
    assert [r["status"] for r in rows] == ["finished", "finished"]
    assert two["metrics"]["train_size"] == one["metrics"]["train_size"]
