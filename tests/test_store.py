import sqlite3
import subprocess
import sys
import threading

import pytest

from supremum.store import Store


def test_dead_process_shows_killed_not_running(tmp_path):
    store = Store(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store.start_run("r1", "finetune", "cmd", {"a": 1}, {"cores": 2})
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE runs SET pid=? WHERE id='r1'", (dead.pid,))
    assert store.get_run("r1")["status"] == "killed"
    store.start_run("r2", "finetune", "cmd", {}, {}, checkpoint=str(tmp_path))
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE runs SET pid=? WHERE id='r2'", (dead.pid,))
    assert store.get_run("r2")["status"] == "resumable"


def test_live_run_failed_run_and_prefix_lookup(tmp_path):
    store = Store(tmp_path)
    store.start_run("abc123", "eval", "cmd", {}, {})
    assert store.get_run("abc")["status"] == "running"
    store.fail_run("abc123", "ValueError: boom")
    row = store.get_run("abc1")
    assert row["status"] == "failed" and "boom" in row["error"]


def test_concurrent_writers_lose_no_rows(tmp_path):
    def writer(k):
        s = Store(tmp_path)
        for i in range(25):
            s.start_run(f"w{k}-{i}", "eval", "cmd", {}, {})
            s.finish_run(f"w{k}-{i}", {"accuracy": i / 25})

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = Store(tmp_path).runs()
    assert len(rows) == 100 and all(r["status"] == "finished" for r in rows)


def test_run_context_finishes_with_metrics_and_artifact(tmp_path):
    from types import SimpleNamespace

    store = Store(tmp_path)
    art = SimpleNamespace(id="art1", path=tmp_path / "a" / ".." / "a")
    with store.run("r1", "eval", "cmd", {"x": 1}, {"cores": 2}, parents=["p1"]) as run:
        assert store.get_run("r1")["status"] == "running" and run.id == "r1"
        run.finish({"accuracy": 0.5}, art)
    row = store.get_run("r1")
    assert row["status"] == "finished" and row["metrics"] == {"accuracy": 0.5} and row["parents"] == ["p1"]
    assert row["artifact_id"] == "art1" and row["artifact_path"] == str((tmp_path / "a").resolve())
    assert row["config"] == {"x": 1} and row["error"] is None


@pytest.mark.parametrize("exc", [ValueError("boom"), KeyboardInterrupt(), SystemExit(3)])
def test_run_context_records_any_exception_and_reraises(tmp_path, exc):
    store = Store(tmp_path)
    with pytest.raises(type(exc)), store.run("r1", "finetune", "cmd", {}, {}) as run:
        run.finish({"accuracy": 1.0})  # an exception after finish still fails the run
        raise exc
    row = store.get_run("r1")
    assert row["status"] == "failed" and row["error"] == f"{type(exc).__name__}: {exc}"
    assert row["metrics"] is None and row["finished"] is not None


def test_run_context_describe_keeps_a_workers_own_line(tmp_path):
    store = Store(tmp_path)
    line = "error: d64L3 diverged at step 7 (lr 0.1): the loss is nan"
    with pytest.raises(RuntimeError), store.run("r1", "scale-run", "", {}, {}, describe=str):
        raise RuntimeError(line)
    assert store.get_run("r1")["error"] == line
