"""Fault injection for the kill tests: a process started with this directory first on PYTHONPATH
and $SUPREMUM_TEST_FAULT set kills or pauses itself at an exact point of its work, so a test
never has to guess with a clock when a run is "somewhere in the middle".

$SUPREMUM_TEST_FAULT is JSON written by `tests/faults.py`:
  on: "step" (after the at-th optimizer update, weights changed, nothing recorded yet) or
      "checkpoint" (right after the at-th file of a checkpoint write)
  at: the count that triggers
  action: "kill" (SIGKILL itself) or "pause" (write `marker`, then wait to be killed from outside,
      for tests that kill a parent or a process group)
  counter: optional file shared by every process of the run (workers, ranks): the count is then
      global rather than per process
Python imports `sitecustomize` at start-up, which reaches worker processes and torchrun ranks
that the test cannot patch directly.
"""

import json
import os

_SPEC = os.environ.get("SUPREMUM_TEST_FAULT")


def _count(spec: dict, seen: list) -> int:
    if not spec.get("counter"):
        seen[0] += 1
        return seen[0]
    import fcntl

    with open(spec["counter"], "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        n = int(f.read() or 0) + 1
        f.seek(0)
        f.truncate()
        f.write(str(n))
        return n


def _install(spec: dict) -> None:
    import signal
    import time

    seen = [0]

    def hit(*_args, **_kw) -> None:
        if _count(spec, seen) != spec["at"]:
            return
        if spec["action"] == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        with open(spec["marker"], "a") as f:
            f.write(f"{os.getpid()}\n")
        while True:  # paused until the test kills us
            time.sleep(3600)

    if spec["on"] == "step":
        from torch.optim.optimizer import register_optimizer_step_post_hook

        register_optimizer_step_post_hook(hit)
    else:
        import supremum.train.checkpoint as ck

        save = ck.save_file

        def save_and_count(tensors, path, *a, **k):
            save(tensors, path, *a, **k)
            hit()

        ck.save_file = save_and_count


if _SPEC:
    _install(json.loads(_SPEC))
