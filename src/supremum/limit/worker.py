"""`python -m supremum.limit.worker`: one scale-sweep run in its own process (a JSON spec on stdin,
the result as JSON on stdout), so parallel runs each own their threads and their timing. With
`nproc` > 1 the worker re-runs itself under torchrun (the spec passed as a file, since the ranks
cannot share stdin) and relays rank 0's result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from supremum.errors import UserError
from supremum.limit.train import Shape, train_run, windows_of
from supremum.train import distributed


def main() -> None:
    try:
        _main()
    except UserError as e:  # one line for the sweep's report (a diverged run), not a traceback
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def _main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text() if len(sys.argv) > 1 else sys.stdin.read())
    dist = distributed.current()
    if not dist.active and spec.get("nproc", 1) > 1:
        sys.stdout.write(_under_torchrun(spec))
        return
    torch.set_num_threads(spec["threads"])
    distributed.init(dist, spec["threads"])  # a rank: join the group, go when torchrun goes
    train = np.load(spec["train"], allow_pickle=False)
    heldout = windows_of(np.load(spec["heldout"], allow_pickle=False), spec["ctx"])
    res = train_run(Shape(spec["d"], spec["layers"]), train, heldout, vocab=spec["vocab"], tokens=spec["tokens"],
                    ctx=spec["ctx"], batch_tokens=spec["batch_tokens"], seed=spec["seed"], skip=spec["skip"])
    if res:  # rank 0
        sys.stdout.write(json.dumps(res))
    distributed.shutdown(dist)


def _under_torchrun(spec: dict) -> str:
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "spec.json"
        f.write_text(json.dumps(spec))
        cmd = distributed.torchrun_command(spec["nproc"], "supremum.limit.worker", [str(f)], log_dir=f"{d}/logs")
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(
            spec["threads"])})
        if proc.returncode != 0:  # rank 0's error, else the first other rank's that left one
            said = [distributed.last_line(proc.stderr)] + [
                distributed.last_line(distributed.rank_stderr(f"{d}/logs", r)) for r in range(1, spec["nproc"])]
            raise SystemExit(f"run failed under torchrun: {next((x for x in said if x), proc.returncode)}")
    return proc.stdout


if __name__ == "__main__":
    main()
