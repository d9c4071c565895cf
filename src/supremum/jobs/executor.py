"""Where independent jobs (a sweep's runs, a comparison's cells) execute: here, or on Ray.

Every job is one of our worker modules run in a fresh process with a JSON spec
(`supremum.jobs.worker.run_worker`); the executor only decides on which machine that process runs.
The driver keeps the bookkeeping (store rows, result files), so both executors write the same
results. `ray` joins the cluster at $RAY_ADDRESS (or an instance already initialized in this
process), else starts a local one; a cluster's nodes must see the same paths (a shared
filesystem for $SUPREMUM_HOME and the data), which is how Ray clusters are usually set up.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from typing import TypeVar

from supremum.errors import UserError
from supremum.jobs.worker import run_worker

EXECUTORS = ("local", "ray")
Runner = Callable[[str, dict, int], str]
T = TypeVar("T")
R = TypeVar("R")


def runner(name: str) -> Runner:
    """run(module, spec, cpus) -> the worker's stdout."""
    if name == "local":
        return lambda module, spec, cpus: run_worker(module, spec)
    if name == "ray":
        return _ray_runner()
    raise UserError(f"unknown executor '{name}'", f"use one of: {', '.join(EXECUTORS)}")


def slots(name: str, cpus_per_job: int) -> int:
    """Jobs that can run at once: the local cores, or the Ray cluster's CPUs, per job's CPUs."""
    if name == "ray":
        import ray

        _ray_init()
        return max(1, int(ray.cluster_resources().get("CPU", 1) // cpus_per_job))
    return max(1, (os.cpu_count() or 1) // cpus_per_job)


def _ray_init() -> None:
    try:
        import ray
    except ImportError:
        raise UserError("the ray executor needs Ray", "pip install 'supremum[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), log_to_driver=False, include_dashboard=False)


def _ray_runner() -> Runner:
    _ray_init()
    import ray

    task = ray.remote(max_retries=0)(run_worker)

    def run(module: str, spec: dict, cpus: int) -> str:
        return ray.get(task.options(num_cpus=cpus).remote(module, spec))

    return run


# The driver's side of a fan-out: one thread per job at once, each waiting on its worker process
# (or doing light bookkeeping), so threads suffice; the work itself runs in the workers.

def fan_out(items: Iterable[T], fn: Callable[[T], R], jobs: int) -> list[R]:
    """[fn(x) for x in items], up to `jobs` at once on threads, results in the order of `items`.

    Errors as `ThreadPoolExecutor.map`: the first failure in that order is raised once the calls
    already running have finished; calls not yet started are not started."""
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(fn, items))


def fan_out_completed(items: Iterable[T], fn: Callable[[T], R], jobs: int) -> Iterator[tuple[T, Future[R]]]:
    """Every (x, its finished future of fn(x)), up to `jobs` at once on threads, in the order they
    finish. Every call runs whatever the others do: a failure is in its future (`.result()` raises
    it), for fan-outs where one failed job must not lose the others."""
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futs = {pool.submit(fn, x): x for x in items}
        for fut in as_completed(futs):
            yield futs[fut], fut
