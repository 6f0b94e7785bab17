"""Deadline admission for every engine: at most `slots` jobs run, the rest wait earliest-deadline-first.

Thread-pooled engines (`WorkerPool`) and async ones (Orpheus's token generator,
an HTTP upstream) put the same gate in front of their work, so a session about
to run dry overtakes one with audio to spare whatever the engine, instead of an
async engine serving first come, first served. A waiting job's deadline is read
when a slot frees up (`DeadlineQueue`), because its session moves it while it
waits. Event-loop only: no threads, and the clock (for idle time) is injected.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from .deadline_queue import Deadline, DeadlineQueue


class DeadlineGate:
    """A fixed number of slots handed out in deadline order."""

    def __init__(self, slots: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if slots < 1:
            raise ValueError("slots must be >= 1")
        self.slots = slots
        self._free = slots
        self._waiting: DeadlineQueue[asyncio.Future[None]] = DeadlineQueue()
        self._clock = clock
        self.admitted = 0
        """Slots asked for so far (jobs and one-off calls), whether or not they had to wait."""
        self._idle_since: float | None = clock()

    @property
    def queue_depth(self) -> int:
        return len(self._waiting)

    @property
    def busy(self) -> int:
        return self.slots - self._free

    @property
    def load(self) -> float:
        """Jobs running or waiting, per slot: how long a newcomer will likely wait."""
        return (self.busy + len(self._waiting)) / self.slots

    def idle_for(self) -> float | None:
        """Seconds since the last slot was given back with nothing waiting; None while busy."""
        return None if self._idle_since is None else self._clock() - self._idle_since

    async def acquire(self, deadline: Deadline) -> None:
        """Wait for a slot; among waiters, the earliest `deadline()` at the moment one frees goes first.
        Cancelled while waiting, the caller leaves the queue (or passes on a slot handed over just then)."""
        self.admitted += 1
        self._idle_since = None
        if self._free > 0 and not self._waiting:
            self._free -= 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = self._waiting.push(fut, deadline)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # we were handed a slot as we were cancelled: pass it on
            else:
                self._waiting.remove(entry)
            raise

    def release(self) -> None:
        """Give a slot back: to the most urgent waiter, else to the free pool."""
        while self._waiting:
            fut = self._waiting.pop()
            if not fut.done():
                fut.set_result(None)
                return
        self._free += 1
        if self._free == self.slots:
            self._idle_since = self._clock()

    @asynccontextmanager
    async def slot(self, deadline: Deadline) -> AsyncIterator[None]:
        """Hold a slot for the body: `async with gate.slot(lambda: job.deadline): ...`."""
        await self.acquire(deadline)
        try:
            yield
        finally:
            self.release()
