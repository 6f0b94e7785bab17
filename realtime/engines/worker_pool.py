"""Runs blocking synthesis work in threads, admitting jobs earliest-deadline-first.

Every engine that does CPU/GPU-bound inference shares this: a fixed number of
worker slots (threads), a `DeadlineGate` in front of them (the admission async
engines use too), and a bridge that streams chunks from the worker thread back to the event loop as
they are produced. A job whose consumer goes away is cancelled through its
token; its slot is only released when the thread has really stopped, so the
slot count always matches the work in flight.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .admission import DeadlineGate
from .base import EngineStats, SynthesisJob, WordTimings

log = logging.getLogger(__name__)

Emit = Callable[[np.ndarray | WordTimings], None]
Work = Callable[[SynthesisJob, Emit], None]
"""Blocking function: synthesize `job`, call `emit` per chunk (and, for a timed job, per `WordTimings`
before the audio it describes), stop early if cancelled."""

_DONE = object()


def _lower_priority(nice: int) -> None:
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    try:  # on Linux a thread is a task: its native id takes its own nice value
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except OSError as exc:
        log.debug("could not lower worker priority: %s", exc)


class WorkerPool:
    """A fixed set of worker threads fed from a deadline-ordered wait list."""

    def __init__(
        self, workers: int, *, name: str, stats: EngineStats, sample_rate: int, nice: int = 10
    ) -> None:
        """`nice`: inference threads run below the event loop's priority, so when every core is
        busy synthesizing, the loop that paces frames and answers barge-in still gets one at once."""
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.gate = DeadlineGate(workers)
        """Admission, and what the pool's load is read from (`queue_depth`, `busy`, `load`, `idle_for`)."""
        self._threads = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix=name, initializer=_lower_priority, initargs=(nice,)
        )
        self._stats = stats
        self._sample_rate = sample_rate

    async def run_blocking(self, fn: Callable[[], object], deadline: float = 0.0) -> object:
        """Run a one-off blocking call (e.g. warm-up) in a worker slot."""
        async with self.gate.slot(lambda: deadline):
            return await asyncio.get_running_loop().run_in_executor(self._threads, fn)

    async def stream(self, job: SynthesisJob, work: Work) -> AsyncIterator[np.ndarray | WordTimings]:
        """Wait for a slot in deadline order, run `work` in a thread, yield its chunks.

        `job.deadline` is read whenever a slot frees up: its session may move it while the job waits."""
        await self.gate.acquire(lambda: job.deadline)
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[object] = asyncio.Queue()
        audio_samples = 0

        def emit(chunk: np.ndarray | WordTimings) -> None:
            nonlocal audio_samples
            if isinstance(chunk, np.ndarray):
                audio_samples += len(chunk)
            loop.call_soon_threadsafe(chunks.put_nowait, chunk)

        def run() -> None:
            self._stats.started()
            started = time.perf_counter()
            cpu_started = time.thread_time()
            outcome = "completed"
            try:
                work(job, emit)
                if job.cancel.cancelled:
                    outcome = "cancelled"
            except BaseException as exc:
                outcome = "failed"
                loop.call_soon_threadsafe(chunks.put_nowait, exc)
            finally:
                self._stats.record(
                    outcome=outcome,
                    chars=len(job.text),
                    audio_s=audio_samples / self._sample_rate,
                    busy_s=time.perf_counter() - started,
                    cpu_s=time.thread_time() - cpu_started,
                )
                loop.call_soon_threadsafe(chunks.put_nowait, _DONE)

        future = loop.run_in_executor(self._threads, run)
        future.add_done_callback(lambda _f: self.gate.release())  # once the thread has really stopped
        try:
            while True:
                item = await chunks.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, np.ndarray | WordTimings)
                yield item
        finally:
            if not future.done():
                job.cancel.cancel()

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._threads.shutdown, True)
