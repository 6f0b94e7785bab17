"""Observers: sockets that receive a session's events (no audio) at their own pace.

A control WebSocket attached to a telephony call watches its events. If its
sends were awaited by the session's writer, an agent that stopped reading would
stall the caller's audio for up to the send timeout. Instead the writer only
`offer`s each event to a bounded queue, and the observer's own task sends
them. An observer that falls `max_pending` events behind, or whose send takes
longer than `send_timeout_s`, is given up on: `run` returns the reason and the
owner closes the socket.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

MAX_PENDING_EVENTS = 1024
"""Events an observer may fall behind before it is dropped (a few minutes of a busy session)."""

SendEvent = Callable[[dict[str, Any]], Awaitable[None]]


class Observer:
    def __init__(
        self, send: SendEvent, *, send_timeout_s: float, max_pending: int = MAX_PENDING_EVENTS
    ) -> None:
        self._send = send
        self.send_timeout_s = send_timeout_s
        self.max_pending = max_pending
        self._pending: deque[dict[str, Any]] = deque()
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self.failure: str | None = None
        """Why the observer was given up on; None while it keeps up."""

    def offer(self, event: dict[str, Any]) -> None:
        """Queue `event` without waiting (called by the session's writer)."""
        if self.failure is not None:
            return
        if len(self._pending) >= self.max_pending:
            self.failure = f"fell {self.max_pending} events behind"
            self._pending.clear()
        else:
            self._pending.append(event)
            self._drained.clear()
        self._wake.set()

    def __len__(self) -> int:
        return len(self._pending)

    async def run(self) -> str:
        """Send queued events until the observer fails; returns why."""
        try:
            while self.failure is None:
                if not self._pending:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                try:
                    await asyncio.wait_for(self._send(self._pending.popleft()), self.send_timeout_s)
                except TimeoutError:
                    self.failure = f"a send took over {self.send_timeout_s:g} s"
                except Exception as exc:  # the socket went away mid-send
                    self.failure = f"send failed: {type(exc).__name__}"
                if not self._pending:
                    self._drained.set()
            return self.failure
        finally:
            self._drained.set()

    async def drain(self) -> None:
        """Wait until everything offered so far has been sent (or the observer has failed)."""
        await self._drained.wait()
