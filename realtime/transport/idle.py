"""Idle timeouts for a connection's read loop, without a timer per message.

`asyncio.wait_for` around every receive made a task and a timer handle per
frame (50 a second for a call's media), and on Python 3.11 it can swallow a
cancellation that races a completed receive: a flooding client's read loop
then survived its session being closed. Instead the read loop only stamps
`Activity.touch()` per message, and one watcher looks every quarter of the
timeout.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from ..session.clock import Clock
from ..session.send_watch import CHECKS_PER_TIMEOUT, Expired, run_until

R = TypeVar("R")


class Activity:
    """When the client was last heard from."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.last = clock.now()

    def touch(self) -> None:
        self.last = self.clock.now()


async def read_until_idle(
    read_loop: Coroutine[Any, Any, R], *, idle_s: float, quiet_since: Callable[[], float | None], clock: Clock
) -> R | Expired:
    """Run `read_loop` to its end, or return EXPIRED once `quiet_since()` is `idle_s` in the past.

    `quiet_since()` is when both sides last did something; None means "busy now" (audio still going
    out, a media path still connected)."""

    def idle() -> bool:
        since = quiet_since()
        return since is not None and clock.now() - since >= idle_s

    return await run_until(read_loop, every_s=idle_s / CHECKS_PER_TIMEOUT, expired=idle, clock=clock)
