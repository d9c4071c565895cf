"""The run store: an embedded SQLite database, the single source for `runs` and `show`.

Each run is one row written in a transaction when it starts and updated when it ends. A run
whose process died without ending it is reported as `killed` (or `resumable` when a
checkpoint exists): the row is never half-written because SQLite commits atomically.
`Store.run` is the lifecycle every command uses: start, then `failed` on any exception
(Ctrl-C included) or `finished` with the metrics and artifact the body gave its `Run`.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, command TEXT, config TEXT, status TEXT NOT NULL,
    started REAL NOT NULL, finished REAL, host TEXT, pid INTEGER, parents TEXT,
    artifact_id TEXT, artifact_path TEXT, metrics TEXT, machine TEXT, error TEXT, checkpoint TEXT
);
CREATE TABLE IF NOT EXISTS artifacts (
    id TEXT PRIMARY KEY, path TEXT NOT NULL, run_id TEXT, task TEXT, base_model TEXT,
    method TEXT, created REAL NOT NULL
);
"""
JSON_COLS = ("config", "parents", "metrics", "machine")
#: the experiment a run is recorded under (run metadata, not config: no config hash changes)
EXPERIMENT_ENV = "SUPREMUM_EXPERIMENT"


def typed_error(e: BaseException) -> str:
    """How a failed run's error is recorded: 'ValueError: boom'."""
    return f"{type(e).__name__}: {e}"


@dataclass
class Run:
    """A started run: the body of `Store.run` calls `finish` (or sets the fields) with what the
    row records when the body ends without an exception."""

    id: str
    metrics: dict = field(default_factory=dict)
    artifact_id: str | None = None
    artifact_path: str | None = None

    def finish(self, metrics: dict | None = None, artifact: Any = None) -> None:
        """`artifact`: anything with `.id` and `.path` (an `Artifact`); its path is stored resolved."""
        self.metrics = metrics or {}
        if artifact is not None:
            self.artifact_id, self.artifact_path = artifact.id, str(Path(artifact.path).resolve())


def home() -> Path:
    return Path(os.environ.get("SUPREMUM_HOME", "supremum-runs"))


class Store:
    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else home()
        self.root.mkdir(parents=True, exist_ok=True)
        self.path = self.root / "runs.sqlite"
        with closing(self._connect()) as db, db:
            db.executescript(SCHEMA)
            if "experiment" not in {r[1] for r in db.execute("PRAGMA table_info(runs)")}:
                try:  # a store made before the column; another process may be adding it too
                    db.execute("ALTER TABLE runs ADD COLUMN experiment TEXT")
                except sqlite3.OperationalError as e:
                    if "duplicate column" not in str(e):
                        raise

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def _exec(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with closing(self._connect()) as db, db:
            return db.execute(sql, args).fetchall()

    def start_run(self, run_id: str, kind: str, command: str, config: dict, machine: dict,
                  parents: list[str] | None = None, checkpoint: str | None = None) -> None:
        self._exec(
            "INSERT INTO runs (id, kind, command, config, status, started, host, pid, parents, "
            "machine, checkpoint, experiment) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET "
            "status='running', pid=excluded.pid, host=excluded.host, error=NULL, finished=NULL",
            (run_id, kind, command, json.dumps(config), "running", time.time(), socket.gethostname(),
             os.getpid(), json.dumps(parents or []), json.dumps(machine), checkpoint,
             os.environ.get(EXPERIMENT_ENV) or None))

    def finish_run(self, run_id: str, metrics: dict | None = None, artifact_id: str | None = None,
                   artifact_path: str | None = None) -> None:
        self._exec("UPDATE runs SET status='finished', finished=?, metrics=?, artifact_id=?, "
                   "artifact_path=? WHERE id=?",
                   (time.time(), json.dumps(metrics or {}), artifact_id, artifact_path, run_id))

    def prune_run(self, run_id: str, why: str) -> None:
        """A run stopped early on purpose (a search pruned its trial): status `pruned`, not
        `failed`, so `supremum runs` does not report a deliberate stop as a fault."""
        self._exec("UPDATE runs SET status='pruned', error=? WHERE id=?", (why[:2000], run_id))

    def fail_run(self, run_id: str, error: str) -> None:
        self._exec("UPDATE runs SET status='failed', finished=?, error=? WHERE id=?",
                   (time.time(), error[:2000], run_id))

    @contextmanager
    def run(self, run_id: str, kind: str, command: str, config: dict, machine: dict, *,
            parents: list[str] | None = None, checkpoint: str | None = None,
            describe: Callable[[BaseException], str] = typed_error) -> Iterator[Run]:
        """Start the row, yield its `Run`; any exception, KeyboardInterrupt and SystemExit
        included, marks it failed with `describe(e)` and propagates; a clean exit finishes it.
        `describe=str` keeps a message that already names its cause (a sweep worker's line)."""
        self.start_run(run_id, kind, command, config, machine, parents, checkpoint)
        run = Run(run_id)
        try:
            yield run
        except BaseException as e:
            self.fail_run(run_id, describe(e))
            raise
        self.finish_run(run_id, run.metrics, run.artifact_id, run.artifact_path)

    def add_artifact(self, art_id: str, path: str, run_id: str | None, task: str, base_model: str,
                     method: str | None) -> None:
        self._exec("INSERT OR REPLACE INTO artifacts VALUES (?,?,?,?,?,?,?)",
                   (art_id, str(Path(path).resolve()), run_id, task, base_model, method, time.time()))

    def runs(self) -> list[dict[str, Any]]:
        return [self._row(r) for r in self._exec("SELECT * FROM runs ORDER BY started")]

    def get_run(self, prefix: str) -> dict[str, Any] | None:
        rows = self._exec("SELECT * FROM runs WHERE id LIKE ? ORDER BY started", (prefix + "%",))
        return self._row(rows[-1]) if len(rows) == 1 else None

    def artifacts(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._exec("SELECT * FROM artifacts ORDER BY created")]

    def get_artifact(self, prefix: str) -> dict[str, Any] | None:
        rows = self._exec("SELECT * FROM artifacts WHERE id LIKE ?", (prefix + "%",))
        return dict(rows[0]) if len(rows) == 1 else None

    def _row(self, row: sqlite3.Row) -> dict[str, Any]:
        d = dict(row)
        for c in JSON_COLS:
            d[c] = json.loads(d[c]) if d[c] else None
        if d["status"] == "running" and not _alive(d["host"], d["pid"]):
            d["status"] = "resumable" if d["checkpoint"] and Path(d["checkpoint"]).exists() else "killed"
        return d


def _alive(host: str | None, pid: int | None) -> bool:
    if host != socket.gethostname():
        return True  # another machine's run: we cannot tell, so do not claim it died
    return pid is not None and psutil.pid_exists(pid) and pid != 0
