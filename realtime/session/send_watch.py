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
import contextlib
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from .clock import Clock

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
        task = asyncio.ensure_future(writer)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self.timeout_s / CHECKS_PER_TIMEOUT)
                if done:
                    return task.result()
                if self.stalled():
                    raise TimeoutError(f"one send took over {self.timeout_s:g} s: the client is not reading")
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
