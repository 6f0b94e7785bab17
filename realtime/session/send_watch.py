"""A send timeout for a writer that sends 50 frames a second per session.

`asyncio.wait_for` around every send made a task per 20 ms frame, and
`asyncio.timeout` a timer handle per frame: together with the wakeups they were
the larger part of the event loop's time per frame (docs/BENCHMARKS.md). Here a
send only records when it began; the task that awaits the writer looks every
quarter of the timeout, so a stalled send is caught between 1 and 1.25 times
`timeout_s` after it began.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from .clock import Clock, MonotonicClock

P = ParamSpec("P")
T = TypeVar("T")

CHECKS_PER_TIMEOUT = 4


class SendWatch:
    def __init__(self, timeout_s: float, clock: Clock) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        self.timeout_s = timeout_s
        self.clock = clock
        self._since: float | None = None

    def watched(self, send: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        """`send`, timed: at most one of the watched sends may be in progress at a time."""

        async def call(*args: P.args, **kwargs: P.kwargs) -> T:
            self._since = self.clock.now()
            try:
                return await send(*args, **kwargs)
            finally:
                self._since = None

        return call

    def stalled(self) -> bool:
        return self._since is not None and self.clock.now() - self._since > self.timeout_s

    async def run(self, writer: Awaitable[T]) -> T:
        """Await `writer`; cancel it and raise TimeoutError once one of its sends has stalled."""
        result = await run_until(
            writer, every_s=self.timeout_s / CHECKS_PER_TIMEOUT, expired=self.stalled, clock=self.clock
        )
        if isinstance(result, Expired):
            raise TimeoutError(f"one send took over {self.timeout_s:g} s: the client is not reading")
        return result


class Expired:
    """What `run_until` returns when its condition came true before the work finished."""


EXPIRED = Expired()
_REAL_TIME = MonotonicClock()


async def run_until(
    work: Awaitable[T], *, every_s: float, expired: Callable[[], bool], clock: Clock | None = None
) -> T | Expired:
    """Await `work`, checking `expired()` every `every_s`; once true, cancel the work and return EXPIRED.

    One task and one check per interval whatever the work does meanwhile: the watchdog behind send
    timeouts and idle timeouts, instead of a timer per send or receive. The interval is measured on
    `clock` (real time by default), so a `FakeClock` steps the watchdog too."""
    task = asyncio.ensure_future(work)
    clock = clock or _REAL_TIME
    try:
        while True:
            if await clock.wait(task, every_s):
                return task.result()
            if expired():
                return EXPIRED
    finally:
        if task.done():
            # It may have failed in the same step that cancelled us (a send to a peer that just reset):
            # retrieve its exception, or asyncio logs "Task exception was never retrieved".
            if not task.cancelled():
                task.exception()
        else:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
