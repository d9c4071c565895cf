"""Moved to `supremum.jobs.worker`; this name keeps working for code that imports it."""

from supremum.jobs.worker import WorkerFailed, run_worker

__all__ = ["WorkerFailed", "run_worker"]
