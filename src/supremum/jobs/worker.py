"""Run one of our own worker modules in a fresh process: `python -m <module>` with a JSON spec
on stdin. Used where a measurement must belong to one job alone (peak memory, time)."""

from __future__ import annotations

import json
import subprocess
import sys


class WorkerFailed(Exception):
    """The worker exited non-zero; the message is the last line it wrote to stderr."""


def run_worker(module: str, spec: dict) -> str:
    proc = subprocess.run([sys.executable, "-m", module], input=json.dumps(spec), capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [x for x in proc.stderr.strip().splitlines() if x.strip()]
        raise WorkerFailed(lines[-1] if lines else "no output")
    return proc.stdout
