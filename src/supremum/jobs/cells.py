"""Cells cached by content: the one runner behind every study that fans runs out to workers.

A cell is one run of a study (a compare variant at one seed, which `curve`, `ceiling` and
`labels` also run through; a `scale` sweep's model size at one token budget), named by the hash
of its config. Its result is one JSON file in its own directory, written atomically by whoever ran
it, so a cell whose file exists is finished: a re-run or a killed study's resume reads it and runs
only the others. Which processes run the pending cells is the executor's business
(`jobs.executor`); this module only decides what is pending and hands the results back with
`cached` set.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from supremum.jobs.executor import fan_out, fan_out_completed

T = TypeVar("T")


@dataclass
class Cached(Generic[T]):
    """The cells whose result file exists (index in the given order → result) and the rest."""

    done: dict[int, dict]
    pending: list[int]


def split_cached(cells: list[T], result_file: Callable[[T], Path]) -> Cached[T]:
    """Read every finished cell's result; list the indices still to run, in the given order."""
    done = {i: json.loads(result_file(c).read_text()) for i, c in enumerate(cells) if result_file(c).exists()}
    return Cached(done, [i for i in range(len(cells)) if i not in done])


def run_in_order(cells: list[T], result_file: Callable[[T], Path], run_one: Callable[[int, T], dict],
                 jobs: int) -> list[tuple[dict, bool]]:
    """(result, cached) of every cell in the order of `cells`; `run_one(i, cell)` runs a pending one
    (and writes its result file). Up to `jobs` at once; the first failure is raised once the calls
    already running have finished, and no further cell starts (`jobs.executor.fan_out`)."""
    cached = split_cached(cells, result_file)

    def one(i: int) -> tuple[dict, bool]:
        return (cached.done[i], True) if i in cached.done else (run_one(i, cells[i]), False)

    return fan_out(range(len(cells)), one, jobs)


def run_as_completed(cells: list[T], result_file: Callable[[T], Path], run_one: Callable[[T], dict], jobs: int,
                     *, first: Callable[[T], float] | None = None
                     ) -> tuple[list[tuple[T, dict]], Iterator[tuple[T, Future[dict]]]]:
    """(the finished cells with their results, an iterator of (cell, finished future) over the
    pending ones in the order they finish). Every pending cell runs whatever the others do: a
    failure is in its future. `first` orders the pending cells before they start (smallest key
    first), e.g. the longest runs first so the pool finishes together."""
    cached = split_cached(cells, result_file)
    pending = [cells[i] for i in cached.pending]
    if first is not None:
        pending.sort(key=first)
    return [(cells[i], r) for i, r in cached.done.items()], fan_out_completed(pending, run_one, jobs)
