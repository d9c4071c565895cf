"""jobs.cells: the cached-cells runner behind compare (curve, ceiling, labels) and scale sweeps."""

import json
import threading

import pytest

from supremum.jobs.cells import run_as_completed, run_in_order, split_cached


def _cells(tmp_path, n=4, done=(1, 3)):
    cells = [{"hash": f"h{i}", "x": i} for i in range(n)]
    for i in done:
        (tmp_path / f"h{i}").mkdir()
        (tmp_path / f"h{i}" / "result.json").write_text(json.dumps({"y": 100 + i}))
    return cells, (lambda c: tmp_path / c["hash"] / "result.json")


def test_split_cached_reads_finished_cells_and_lists_the_rest(tmp_path):
    cells, f = _cells(tmp_path)
    got = split_cached(cells, f)
    assert got.done == {1: {"y": 101}, 3: {"y": 103}}
    assert got.pending == [0, 2]


def test_run_in_order_runs_only_pending_cells_and_keeps_the_order(tmp_path):
    cells, f = _cells(tmp_path)
    ran = []

    def one(i, c):
        ran.append(i)
        return {"y": c["x"] * 10}

    out = run_in_order(cells, f, one, jobs=2)
    assert sorted(ran) == [0, 2]
    assert out == [({"y": 0}, False), ({"y": 101}, True), ({"y": 20}, False), ({"y": 103}, True)]


def test_run_in_order_raises_the_first_failure(tmp_path):
    cells, f = _cells(tmp_path, done=())

    def one(i, c):
        if i == 1:
            raise ValueError("cell 1 broke")
        return {}

    with pytest.raises(ValueError, match="cell 1 broke"):
        run_in_order(cells, f, one, jobs=1)


def test_run_as_completed_orders_pending_cells_and_keeps_going_past_failures(tmp_path):
    cells, f = _cells(tmp_path, n=5, done=(2,))
    started, lock = [], threading.Lock()

    def one(c):
        with lock:
            started.append(c["x"])
        if c["x"] == 4:
            raise RuntimeError("four failed")
        return {"y": c["x"]}

    cached, finished = run_as_completed(cells, f, one, jobs=1, first=lambda c: -c["x"])
    assert cached == [(cells[2], {"y": 102})]
    outcomes = {c["x"]: (fut.exception() or fut.result()) for c, fut in finished}
    assert started == [4, 3, 1, 0]  # one job at a time: exactly the `first` order
    assert str(outcomes.pop(4)) == "four failed"
    assert outcomes == {3: {"y": 3}, 1: {"y": 1}, 0: {"y": 0}}
