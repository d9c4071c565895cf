"""The driver's fan-outs (compare cells, sweep runs, pipeline waves): order of results and errors."""

import threading
import time

import pytest

from supremum.jobs.executor import fan_out, fan_out_completed


def test_fan_out_keeps_the_order_of_items_when_later_ones_finish_first():
    first_may_end = threading.Event()

    def fn(x):
        if x == 0:
            assert first_may_end.wait(5)
        else:
            first_may_end.set()  # item 1 ends while item 0 still runs
        return x * 10

    assert fan_out([0, 1], fn, jobs=2) == [0, 10]
    assert fan_out([], fn, jobs=3) == []


def test_fan_out_raises_the_first_failure_in_item_order_after_the_running_calls_end():
    ended = []
    b_failed, c_started = threading.Event(), threading.Event()

    def fn(x):
        if x == "a":
            # "c" must be running, not merely queued: a queued call is cancelled, not waited for
            assert b_failed.wait(5) and c_started.wait(5)
            raise ValueError("a failed")
        if x == "b":
            b_failed.set()
            raise KeyError("b failed first in time, second in order")
        c_started.set()
        time.sleep(0.2)  # still running when "a" fails
        ended.append(x)
        return x

    with pytest.raises(ValueError, match="a failed"):
        fan_out(["a", "b", "c"], fn, jobs=3)
    assert ended == ["c"]  # the raise waited for the call still running


def test_fan_out_starts_nothing_more_after_a_failure_with_one_job():
    started = []

    def fn(x):
        started.append(x)
        if x == 1:
            raise RuntimeError("one")
        if x >= 2:
            time.sleep(0.3)  # the one worker may pick up item 2 before the failure is seen; never item 3
        return x

    with pytest.raises(RuntimeError, match="one"):
        fan_out(range(6), fn, jobs=1)
    assert started[:2] == [0, 1] and 3 not in started  # the items after the failure were cancelled


def test_fan_out_completed_yields_in_finishing_order_and_runs_every_item():
    second_done = threading.Event()

    def fn(x):
        if x == "slow":
            assert second_done.wait(5)
            return "s"
        if x == "bad":
            raise ValueError("bad run")
        return "f"

    got = []
    for item, fut in fan_out_completed(["slow", "bad", "fast"], fn, jobs=3):
        try:
            got.append((item, fut.result()))
        except ValueError as e:
            got.append((item, str(e)))
        if len(got) == 2:
            second_done.set()
    assert got[-1] == ("slow", "s")  # finished last, yielded last
    assert sorted(got[:2]) == [("bad", "bad run"), ("fast", "f")]  # a failure loses no other run


def test_the_old_module_paths_are_the_jobs_package():
    import supremum.executor
    import supremum.jobs.executor
    import supremum.jobs.worker
    import supremum.worker

    assert supremum.worker.WorkerFailed is supremum.jobs.worker.WorkerFailed  # `except` at old imports
    assert supremum.worker.run_worker is supremum.jobs.worker.run_worker
    for name in supremum.executor.__all__:
        assert getattr(supremum.executor, name) is getattr(supremum.jobs.executor, name)
