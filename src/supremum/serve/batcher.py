"""Micro-batching: texts from concurrent requests are queued and run together, up to
`max_batch` texts or `max_wait_ms` after the first, sorted by length so a batch pads little.
One inference thread runs the batches in order (the model is not re-entrant, and on a CPU one
batch already uses every core)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np


class Saturated(Exception):
    """The queue is full: the caller should retry later (503)."""


@dataclass
class _Job:
    ids: list[int]
    future: asyncio.Future


class Batcher:
    def __init__(self, predict: Callable[[list[list[int]]], np.ndarray], max_batch: int, max_wait_ms: float,
                 max_queue: int, on_batch: Callable[[int], None] | None = None):
        self.predict, self.max_batch, self.max_wait = predict, max_batch, max_wait_ms / 1000
        self.max_queue, self.on_batch = max_queue, on_batch or (lambda n: None)
        self.queue: asyncio.Queue[_Job] = asyncio.Queue()
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="inference")
        self._task: asyncio.Task | None = None
        self._window: list[_Job] = []  # taken from the queue, waiting for the batch window to close

    @property
    def depth(self) -> int:
        """Texts waiting for a batch: queued, or in the batch window that is still open."""
        return self.queue.qsize() + len(self._window)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Finish what is queued, then stop (graceful shutdown)."""
        while self.depth:
            await asyncio.sleep(0.01)
        if self._task:
            self._task.cancel()
        self.executor.shutdown(wait=True)

    async def submit(self, ids: list[list[int]]) -> list[np.ndarray]:
        if self.depth + len(ids) > self.max_queue:
            raise Saturated
        loop = asyncio.get_running_loop()
        jobs = [_Job(x, loop.create_future()) for x in ids]
        for j in jobs:
            self.queue.put_nowait(j)
        try:
            return list(await asyncio.gather(*(j.future for j in jobs)))
        except asyncio.CancelledError:
            for j in jobs:
                j.future.cancel()  # a timed-out request's texts are skipped, not computed
            raise

    async def run_exclusive(self, fn: Callable, *args):
        """Run other work (generation) on the inference thread, in turn with the batches."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def _collect(self) -> list[_Job]:
        batch = self._window = [await self.queue.get()]
        deadline = asyncio.get_running_loop().time() + self.max_wait
        try:
            while len(batch) < self.max_batch:
                left = deadline - asyncio.get_running_loop().time()
                try:
                    batch.append(self.queue.get_nowait() if left <= 0 else
                                 await asyncio.wait_for(self.queue.get(), left))
                except (TimeoutError, asyncio.QueueEmpty):
                    break
        finally:
            self._window = []
        return [j for j in batch if not j.future.done()]

    async def _loop(self) -> None:
        while True:
            batch = await self._collect()
            if not batch:
                continue
            self.on_batch(len(batch))
            try:
                out = await self.run_exclusive(self.predict, [j.ids for j in batch])
            except Exception as e:  # noqa: BLE001 - the error goes to every waiting request
                for j in batch:
                    if not j.future.done():
                        j.future.set_exception(e)
                continue
            for j, row in zip(batch, out, strict=True):
                if not j.future.done():
                    j.future.set_result(row)
