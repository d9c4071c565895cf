"""Which runs a report covers: one pipeline's, one experiment's, those since a date. A scoped store
reads like the store (`runs()`, `artifacts()`, `root`) with the other runs left out, so every
section of the report is scoped the same way.

A run belongs to pipeline NAME when its artifact, or the artifact it evaluated, lives under
`<store>/pipelines/NAME/` (where `supremum pipeline run` puts each stage). Its experiment is the
one recorded when it ran (`SUPREMUM_EXPERIMENT`), else its pipeline's name."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from supremum.errors import UserError
from supremum.store import Store


def pipeline_of(path: str | None) -> str | None:
    """The pipeline whose stage directory `path` is (`.../pipelines/<name>/<stage>-<hash>`), else None."""
    if not path:
        return None
    p = Path(path)
    return p.parent.name if p.parent.parent.name == "pipelines" else None


def stage_of(path: str | None) -> str | None:
    """The stage id of a pipeline artifact's directory (`<stage>-<hash>`, or `<stage>-<hash>-adapter`)."""
    if pipeline_of(path) is None:
        return None
    name = Path(path).name
    adapter = name.endswith("-adapter")
    stage = name.removesuffix("-adapter").rsplit("-", 1)[0]
    return stage + (" adapter" if adapter else "")


def parse_since(text: str) -> float:
    """A date or date-time (ISO 8601, e.g. 2026-11-30 or 2026-11-30T14:00), local time -> epoch seconds."""
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise UserError(f"--since: '{text}' is not a date", "use YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None


class ScopedStore:
    """The runs (and their artifacts) of `store` within the scope; every filter given must hold."""

    def __init__(self, store: Store, pipeline: str | None = None, experiment: str | None = None,
                 since: float | None = None) -> None:
        self.store, self.root, self.path = store, store.root, store.path
        self.pipeline, self.experiment, self.since = pipeline, experiment, since
        self._paths = {a["id"]: a["path"] for a in store.artifacts()}

    def _pipeline(self, r: dict) -> str | None:
        m = r.get("metrics") or {}
        art = r.get("artifact_id") or m.get("artifact")
        return pipeline_of(r.get("artifact_path") or self._paths.get(art))

    def keeps(self, r: dict) -> bool:
        if self.since is not None and r["started"] < self.since:
            return False
        if self.pipeline is not None and self._pipeline(r) != self.pipeline:
            return False
        return self.experiment is None or (r.get("experiment") or self._pipeline(r)) == self.experiment

    def runs(self) -> list[dict[str, Any]]:
        return [r for r in self.store.runs() if self.keeps(r)]

    def artifacts(self) -> list[dict[str, Any]]:
        runs = self.runs()
        ids = {r["artifact_id"] for r in runs} | {(r.get("metrics") or {}).get("artifact") for r in runs}
        return [a for a in self.store.artifacts() if a["id"] in ids]

    def __getattr__(self, name: str):  # anything else (get_run, ...) reads the whole store
        return getattr(self.store, name)


def scoped(store: Store, pipeline: str | None = None, experiment: str | None = None,
           since: str | None = None) -> Store | ScopedStore:
    """`store` itself when no filter is given, else its ScopedStore; UserError when nothing is in scope."""
    if pipeline is None and experiment is None and since is None:
        return store
    out = ScopedStore(store, pipeline, experiment, parse_since(since) if since else None)
    if not out.runs():
        what = ", ".join(f"{k} {v}" for k, v in (("pipeline", pipeline), ("experiment", experiment),
                                                  ("since", since)) if v)
        hints = {"pipeline": "a pipeline is named by its recipe's `name:`",
                 "experiment": "an experiment is the SUPREMUM_EXPERIMENT its runs were started with",
                 "since": "runs started on or after that date"}
        given = [k for k, v in (("pipeline", pipeline), ("experiment", experiment), ("since", since)) if v]
        raise UserError(f"no run in the store matches {what}",
                        "; ".join(["see `supremum runs`", *(hints[k] for k in given)]))
    return out
