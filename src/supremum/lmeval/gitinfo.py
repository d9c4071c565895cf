"""lm-eval's git lookup, with git's stderr captured.

`lm_eval.simple_evaluate` records the working directory's commit (`results["git_hash"]`) by
running `git describe --always` with stderr left on the terminal, so every run outside a git
checkout printed "fatal: not a git repository". The same lookup, its value unchanged (the
commit, or lm-eval's own fallback that reads .git/HEAD, else None), says nothing.
"""

from __future__ import annotations

import os
import subprocess


def git_commit_hash() -> str | None:
    """`git describe --always` in the working directory, else lm-eval's .git/HEAD reading
    (lm_eval.loggers.utils.get_git_commit_hash, with git's stderr captured)."""
    from lm_eval.loggers.utils import get_commit_from_path

    try:
        return subprocess.run(["git", "describe", "--always"], capture_output=True, check=True,  # noqa: S607
                              text=True).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):  # not a checkout; git not installed
        return get_commit_from_path(os.getcwd())


def install() -> None:
    """Make lm-eval's evaluator use `git_commit_hash` (it imported its own by name)."""
    import lm_eval.evaluator

    lm_eval.evaluator.get_git_commit_hash = git_commit_hash
