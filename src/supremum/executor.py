"""Moved to `supremum.jobs.executor`; this name keeps working for code that imports it."""

from supremum.jobs.executor import EXECUTORS, Runner, fan_out, fan_out_completed, runner, slots

__all__ = ["EXECUTORS", "Runner", "fan_out", "fan_out_completed", "runner", "slots"]
