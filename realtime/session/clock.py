"""Time sources: the real monotonic clock, and a fake one that tests step by hand.

A clock tells the time and also waits on it (`sleep`, `wait`), so that code which
paces audio or times out a send can run on a `FakeClock` in tests: its timers fire
only when the test calls `advance`, and a whole session can be driven frame by
frame without real time passing.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Any, Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic scale."""

    async def sleep(self, seconds: float) -> None:
        """Return once `seconds` have passed on this clock."""

    async def wait(self, future: asyncio.Future[Any], timeout: float | None) -> bool:
        """Wait until `future` is done (True) or `timeout` seconds pass on this clock (False);
        the future is left running either way."""


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def wait(self, future: asyncio.Future[Any], timeout: float | None) -> bool:
        done, _ = await asyncio.wait({future}, timeout=timeout)
        return bool(done)


class FakeClock:
    """A clock that only moves when told to; its sleeps and timeouts end when `advance` reaches them."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._now += seconds
        while self._timers and self._timers[0][0] <= self._now:
            timer = heapq.heappop(self._timers)[2]
            if not timer.done():
                timer.set_result(None)

    @property
    def timers(self) -> int:
        """Sleeps and timeouts waiting for the clock to reach them."""
        return sum(1 for _, _, timer in self._timers if not timer.done())

    def next_timer(self) -> float | None:
        """When the earliest pending sleep or timeout ends; None if none waits."""
        pending = [at for at, _, timer in self._timers if not timer.done()]
        return min(pending) if pending else None

    def _timer(self, seconds: float) -> asyncio.Future[None]:
        timer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self._now + seconds, next(self._order), timer))
        return timer

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        timer = self._timer(seconds)
        try:
            await timer
        finally:
            timer.cancel()

    async def wait(self, future: asyncio.Future[Any], timeout: float | None) -> bool:
        if timeout is None:
            await asyncio.wait({future})
            return True
        if future.done():
            return True
        if timeout <= 0:
            await asyncio.sleep(0)
            return future.done()
        timer = self._timer(timeout)
        try:
            await asyncio.wait({future, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
        return future.done()
