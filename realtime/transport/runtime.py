"""The transport runtime: one place that opens a realtime session for any transport, serves it, and
closes it.

A dialect (the native WebSocket, Twilio Media Streams, WebRTC, and those to come) is an
adapter: it reads its wire messages into session commands, and maps the session's events
and audio to its own messages (a `SessionTransport`). Everything else is here, written once:

- `slot`: the session limits, counted per API key, held for the connection's life;
- `open`: the preset checked as a `session.update` would be, engine and voice resolved,
  the API key and text source recorded; a refusal is a `Refused`;
- `serve`: registration for the session control API, `session.created`, the session's
  speaker and writer beside the adapter's receive loop until either ends, and the close
  that says why it ended (`close_for`);
- `until_idle` (a receive loop's idle timeout) and `client_errors` (a client's mistake
  becomes an `error` event, and the session goes on);
- `run`: all of the above for a dialect on one socket, refusals told to the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.websockets import WebSocketDisconnect

from ..control.auth import LimitExceeded
from ..control.logs import session_id as session_id_var
from ..gateway import Gateway
from ..session import server_events
from ..session.config import ConfigError, SessionConfig, apply_update
from ..session.errors import ClientError
from ..session.outbox import OutboxOverflow
from ..session.realtime import RealtimeSession, new_session_id
from ..session.send_watch import Expired
from .close_codes import Close, CloseCode
from .idle import Activity, read_until_idle

log = logging.getLogger(__name__)

IDLE_EVENT_GRACE_S = 0.05
"""How long the `idle_timeout` event gets to leave before the close."""


class SessionTransport(Protocol):
    """What a session is served over: a WebSocket dialect, a WebRTC peer."""

    async def send_event(self, event: server_events.ServerEvent) -> None: ...

    async def send_audio(self, data: bytes, context_id: str) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


Receiver = Callable[[RealtimeSession], Awaitable[Close | None]]
"""A dialect's receive loop: reads the client until it leaves (None) or the dialect ends the session."""
ReadLoop = Callable[[Activity], Coroutine[Any, Any, Close | None]]
"""The inner loop `until_idle` watches: stamps `Activity` on every message it reads."""


@dataclass(frozen=True)
class Opening:
    """What a connection asks for."""

    transport: str
    """The dialect's name, for metrics and the control API."""
    api_key: str | None
    preset: Mapping[str, Any] | Callable[[], Mapping[str, Any]] = field(default_factory=dict)
    """A `session.update` patch (from a query string, a `start` message, an offer), or what computes
    it: a `ConfigError` it raises refuses the session like any other configuration error."""
    session_id: str | None = None
    """Chosen by the client (a telephony call); None: a new unguessable id."""
    text_source: str | None = None
    """Who sends the text: the connection itself, or None for the session control API."""


class Refused(Exception):
    """No session for this connection: the reason, as an `error` code and as a close."""

    def __init__(
        self, code: str, message: str, *, close: CloseCode = CloseCode.POLICY, param: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.close = close
        self.param = param
        """The offending configuration field, if any."""

    def event(self) -> server_events.ServerEvent:
        return server_events.error(self.code, self.message)


class SessionRuntime:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.settings = gateway.settings

    @classmethod
    def of(cls, app: Starlette) -> SessionRuntime:
        """The app's runtime (made on first use)."""
        runtime = getattr(app.state, "session_runtime", None)
        if runtime is None:
            runtime = app.state.session_runtime = cls(app.state.gateway)
        return runtime  # type: ignore[no-any-return]

    # -- opening ------------------------------------------------------------------------------

    @contextmanager
    def slot(self, api_key: str | None) -> Iterator[None]:
        """A session slot for the block; `Refused` (too_many_sessions) past the limits."""
        with ExitStack() as stack:
            try:
                stack.enter_context(self.gateway.limiter.acquire(api_key))
            except LimitExceeded as exc:
                raise Refused("too_many_sessions", str(exc)) from None
            yield

    def open(self, opening: Opening) -> RealtimeSession:
        """A configured session, not yet serving; `Refused` if its id is taken or its preset is bad."""
        sid = opening.session_id
        if sid is not None and self.gateway.sessions.get(sid, opening.api_key) is not None:
            raise Refused("session_exists", f"session '{sid}' already exists")  # ids are per API key
        try:
            preset = opening.preset() if callable(opening.preset) else opening.preset
            session = RealtimeSession(
                self.gateway.session_deps(), session_id=sid or new_session_id(),
                config=apply_update(SessionConfig(), dict(preset)), transport=opening.transport,
            )  # fmt: skip
        except ConfigError as exc:
            raise Refused("invalid_config", str(exc), param=exc.field) from None
        session.api_key = opening.api_key
        session.text_source = opening.text_source
        return session

    async def refuse(self, conn: SessionTransport, refused: Refused) -> None:
        """Tell the client why it gets no session (an `error` event, where the dialect has them), then
        close."""
        with contextlib.suppress(Exception):  # it may have left already
            await conn.send_event(refused.event())
        await conn.close(refused.close, refused.message)

    # -- serving ------------------------------------------------------------------------------

    async def serve(self, session: RealtimeSession, conn: SessionTransport, receive: Receiver) -> Close:
        """Run `session` on `conn` until either side ends it; then unregister, close, and return why."""
        gw = self.gateway
        session_id_var.set(session.id)
        if not gw.sessions.add(session):
            close = Close(CloseCode.POLICY, f"session '{session.id}' already exists")
            await conn.close(*close)
            return close
        gw.metrics.active_sessions.labels(session.transport).inc()
        log.info("session opened", extra={"session_id": session.id, "transport": session.transport})
        session.emit(server_events.session_created(session.describe()))
        runner = asyncio.create_task(
            session.run(conn.send_audio, conn.send_event, send_timeout_s=self.settings.send_timeout_s)
        )
        receiver = asyncio.create_task(receive(session))
        close = Close(CloseCode.NORMAL, "session closed")
        try:
            done, _ = await asyncio.wait({runner, receiver}, return_when=asyncio.FIRST_COMPLETED)
            ended = runner if runner in done else receiver
            exc = ended.exception()
            if exc is not None:
                close = close_for(exc, session)
            elif ended is receiver and (result := receiver.result()) is not None:
                close = result
        finally:
            # Unregistered before anything is awaited: a client that reconnects with the same id at once
            # (a Twilio stream restarted) must not find its old session still there.
            gw.sessions.remove(session)
            for task in (runner, receiver):
                task.cancel()
            for task in (runner, receiver):
                with contextlib.suppress(BaseException):
                    await task
            session.shutdown()
            gw.metrics.active_sessions.labels(session.transport).dec()
            log.info(
                "session closed", extra={"session_id": session.id, "code": close.code, "reason": close.reason}
            )
            await conn.close(close.code, close.reason)
        return close

    async def run(
        self, conn: SessionTransport, *, api_key: str | None,
        opening: Opening | Callable[[], Awaitable[Opening | None]], receive: Receiver,
    ) -> None:  # fmt: skip
        """A dialect on one socket, start to end: the slot, then the opening (an async `opening` may
        first read the client's setup message, and returns None if the client leaves first), then
        the session; any refusal is told to the client."""
        try:
            with self.slot(api_key):
                wanted = opening if isinstance(opening, Opening) else await opening()
                if wanted is not None:
                    await self.serve(self.open(wanted), conn, receive)
        except Refused as exc:
            await self.refuse(conn, exc)

    # -- helpers for receive loops ------------------------------------------------------------

    async def until_idle(
        self, session: RealtimeSession, read: ReadLoop, *,
        quiet_since: Callable[[Activity], float | None] | None = None, announce: bool = True,
    ) -> Close | None:  # fmt: skip
        """Run `read` until it ends, or until neither side has said anything for `idle_timeout_s`
        (`quiet_since`: when both sides last did something, None while busy; by default the client's
        last message and the session's last audio, busy while anything is queued for it). Then,
        after an `idle_timeout` event if `announce`, the session closes 4408."""
        idle_s = self.settings.idle_timeout_s
        activity = Activity(session.clock)
        since = quiet_since or (lambda a: default_quiet_since(session, a))
        result = await read_until_idle(
            read(activity), idle_s=idle_s, quiet_since=lambda: since(activity), clock=session.clock
        )
        if not isinstance(result, Expired):
            return result
        if announce:
            session.emit(server_events.error("idle_timeout", f"no message for {idle_s:g} s"))
            await asyncio.sleep(IDLE_EVENT_GRACE_S)  # let the writer send it
        return Close(CloseCode.IDLE, "idle timeout")

    @contextmanager
    def client_errors(self, session: RealtimeSession) -> Iterator[None]:
        """A client's mistake inside the block becomes an `error` event (and a metric); the session
        lives on."""
        try:
            yield
        except ClientError as exc:
            self.gateway.metrics.errors.labels(exc.code).inc()
            session.emit(exc.event())


def default_quiet_since(session: RealtimeSession, activity: Activity) -> float | None:
    """When the client last sent something and the session last sent it something; None while audio
    or events are still queued for it."""
    if len(session.outbox):
        return None
    return max(activity.last, session.last_sent_at)


def close_for(exc: BaseException, session: RealtimeSession) -> Close:
    """The close for a session that ended with `exc` on either side."""
    if isinstance(exc, TimeoutError):
        return Close(CloseCode.POLICY, "client stopped reading audio")
    if isinstance(exc, OutboxOverflow):
        log.warning("client not reading its events", extra={"session_id": session.id})
        return Close(CloseCode.POLICY, "client stopped reading its events")
    if isinstance(exc, WebSocketDisconnect | OSError):
        return Close(CloseCode.NORMAL, "client went away")
    log.error("session failed", exc_info=exc, extra={"session_id": session.id})
    return Close(CloseCode.INTERNAL, "internal error")
