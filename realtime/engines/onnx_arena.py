"""ONNX Runtime's CPU memory arena, given back when an engine goes idle.

The arena grows to the largest run it has served (and to the sum of the runs in
flight at once) and keeps that memory for the life of the session: after one long
input the process stays hundreds of MB larger. Shrinking the arena after every run
gives memory back at once but cost ~10 % of Piper's throughput here
(docs/BENCHMARKS.md); so runs keep the arena, and once the engine has been idle for a
while one tiny run with ORT's shrink option hands the unused arena back to the system.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from .worker_pool import WorkerPool

log = logging.getLogger(__name__)

SHRINK_CONFIG = ("memory.enable_memory_arena_shrinkage", "cpu:0")


class ShrinkableSession:
    """An `onnxruntime.InferenceSession` whose runs shrink the arena inside `shrinking()`.

    Stands in for the session wherever a model's own code calls `session.run(names, feed)`."""

    def __init__(self, session: Any) -> None:
        import onnxruntime

        self._session = session
        self._shrink = onnxruntime.RunOptions()
        self._shrink.add_run_config_entry(*SHRINK_CONFIG)
        self._local = threading.local()

    def run(self, output_names: Any, input_feed: Any, run_options: Any = None) -> Any:
        if getattr(self._local, "shrink", False):
            run_options = self._shrink
        return self._session.run(output_names, input_feed, run_options)

    @contextlib.contextmanager
    def shrinking(self) -> Iterator[None]:
        """Runs made by this thread inside the block free the arena's unused memory when they end."""
        self._local.shrink = True
        try:
            yield
        finally:
            self._local.shrink = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


class IdleTrimmer:
    """Trims once the pool has been idle for `after_s`, once per busy spell: each of `trims` (one per
    loaded model) runs in a worker of its own, and a trim pass stops as soon as real work arrives, so
    a request after an idle spell waits at most for one tiny run. An idle server returns to its
    loaded size."""

    def __init__(
        self, pool: WorkerPool, trims: Callable[[], list[Callable[[], None]]], *, after_s: float
    ) -> None:
        self.pool = pool
        self.trims = trims
        self.after_s = after_s
        self._trimmed_after = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.after_s > 0 and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.after_s / 4)
            idle = self.pool.gate.idle_for()
            if self.pool.gate.admitted > self._trimmed_after and idle is not None and idle >= self.after_s:
                await self._trim_pass()

    async def _trim_pass(self) -> None:
        for trim in self.trims():
            if self.pool.gate.load > 0:
                return  # work arrived: its spell gets a pass of its own once it is idle again
            before = self.pool.gate.admitted
            try:
                await self.pool.run_blocking(trim)
            except Exception as exc:
                log.warning("could not trim the engine's memory arena", extra={"error": repr(exc)})
            if self.pool.gate.admitted > before + 1:
                return  # a job started meanwhile: not trimmed after it
            self._trimmed_after = self.pool.gate.admitted
