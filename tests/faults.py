"""Environment for a subprocess that kills or pauses itself at an exact point (see
tests/fault_injection/sitecustomize.py): kill tests control where the kill lands."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

HOOK_DIR = Path(__file__).parent / "fault_injection"


def fault_env(env: dict, on: str, at: int, action: str = "kill", marker: Path | None = None,
              counter: Path | None = None) -> dict:
    """`env` plus the fault: on "step" or "checkpoint", the at-th one, "kill" or "pause"
    (pause writes `marker` and waits to be killed)."""
    if action == "pause" and marker is None:
        raise ValueError("a pause needs a marker file")
    spec = {"on": on, "at": at, "action": action, "marker": str(marker) if marker else None,
            "counter": str(counter) if counter else None}
    path = os.pathsep.join(x for x in (str(HOOK_DIR), env.get("PYTHONPATH", "")) if x)
    return {**env, "PYTHONPATH": path, "SUPREMUM_TEST_FAULT": json.dumps(spec)}


def wait_for_pause(marker: Path, proc, timeout: float = 300) -> None:
    """Until a paused process wrote `marker`; fails if `proc` ended first (it never paused)."""
    deadline = time.time() + timeout
    while not marker.exists():
        assert proc.poll() is None, "the run ended before the pause point"
        assert time.time() < deadline, "the pause point was not reached in time"
        time.sleep(0.02)
