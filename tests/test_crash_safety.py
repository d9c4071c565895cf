"""Crash safety: kills at awkward moments, a full disk, concurrent writers of the store."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import torch
from safetensors.torch import load_file

from supremum.store import Store

FT = ["finetune", "--model", "tiny-bert", "--method", "full", "--max-steps", "12", "--batch-size", "8",
      "--checkpoint-every", "3", "--precision", "fp32", "--no-progress", "train.eval_every=6", "train.threads=1"]


def _env(home: Path) -> dict:
    return {**os.environ, "SUPREMUM_HOME": str(home), "HF_HUB_OFFLINE": "1"}


def _run(args: list[str], home: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "supremum", *args], env=_env(home), capture_output=True,
                          text=True, timeout=600, **kw)


def _weights(path: Path) -> dict:
    return load_file(str(path / "model.safetensors"))


def test_kill_during_a_checkpoint_write_keeps_the_previous_one(csv_data, tmp_path):
    ref = _run([*FT, "--data", str(csv_data), "--output", str(tmp_path / "ref")], tmp_path / "h1")
    assert ref.returncode == 0, ref.stderr
    home = tmp_path / "h2"
    # Die inside the third checkpoint write, after its weights and optimizer files, before the rest.
    killer = textwrap.dedent(f"""
        import os, signal, sys
        import supremum.train.checkpoint as ck
        orig, calls = ck.save_file, []
        def save_file(tensors, path, *a, **k):
            orig(tensors, path, *a, **k)
            if str(path).endswith("optimizer.safetensors"):
                calls.append(1)
                if len(calls) == 3:
                    os.kill(os.getpid(), signal.SIGKILL)
        ck.save_file = save_file
        from supremum.cli import main
        sys.argv = ["supremum", *{[*FT, "--data", str(csv_data), "--output", str(tmp_path / "out")]!r}]
        main()
    """)
    p = subprocess.run([sys.executable, "-c", killer], env=_env(home), capture_output=True, text=True, timeout=600)
    assert p.returncode == -signal.SIGKILL, p.stderr
    last = next(home.glob("checkpoints/*/last"))
    assert json.loads((last / "state.json").read_text())["step"] == 6  # the second checkpoint, whole
    res = _run([*FT, "--data", str(csv_data), "--output", str(tmp_path / "out"), "--resume"], home)
    assert res.returncode == 0, res.stderr
    a, b = _weights(tmp_path / "ref"), _weights(tmp_path / "out")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["status"] for r in Store(home).runs()] == ["finished"]


def test_a_full_disk_gives_one_clear_line_and_keeps_the_previous_artifact(csv_data, tmp_path):
    out = tmp_path / "art"
    first = _run([*FT, "--data", str(csv_data), "--output", str(out)], tmp_path / "h")
    assert first.returncode == 0, first.stderr
    before = hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()
    size = (out / "model.safetensors").stat().st_size
    # A file-size limit below the weights' size: the same failure as a full disk (EFBIG).
    limit = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (size // 2, size // 2))  # noqa: E731
    again = _run([*FT, "--data", str(csv_data), "--output", str(out), "--seed", "7"], tmp_path / "h",
                 preexec_fn=limit)
    assert again.returncode == 1
    # The data summary ("data: ...") prints before training; after it, the failure is one line, no traceback.
    lines = [ln for ln in again.stderr.strip().splitlines() if not ln.startswith("data: ")]
    assert len(lines) == 1 and lines[0].startswith("error: no space left") and "intact" in lines[0], again.stderr
    assert hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest() == before
    assert json.loads((out / "manifest.json").read_text())  # still a whole artifact


def test_the_store_keeps_every_row_of_concurrent_writers(tmp_path):
    writer = textwrap.dedent(f"""
        import sys
        from supremum.store import Store
        s = Store({str(tmp_path)!r})
        for i in range(150):
            rid = f"{{sys.argv[1]}}-{{i}}"
            s.start_run(rid, "test", "", {{"i": i}}, {{}})
            s.finish_run(rid, {{"i": i}})
    """)
    procs = [subprocess.Popen([sys.executable, "-c", writer, name]) for name in ("a", "b", "c")]
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0]
    runs = Store(tmp_path).runs()
    assert len(runs) == 450 and {r["status"] for r in runs} == {"finished"}


# Kills at seeded random points of fine-tunes, distillations, pipelines and sweeps: test_kill_points.py
