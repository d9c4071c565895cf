import sqlite3
import subprocess
import sys
import threading

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
