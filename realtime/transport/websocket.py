"""`GET /v1/realtime`: the native realtime protocol over WebSocket (JSON or msgpack).

Thin adapter: frames in become commands for a `RealtimeSession`, the session's
events and audio become frames out. Two tasks per connection: this receive
loop, and the session's `run()` (speaker + writer). Either ending ends both.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from typing import Any, Protocol

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..control.auth import LimitExceeded, extract_key
from ..control.logs import session_id as session_id_var
from ..gateway import Gateway
from ..session import server_events
from ..session.config import ConfigError, SessionConfig, apply_update
from ..session.errors import ClientError
from ..session.outbox import OutboxOverflow
from ..session.realtime import RealtimeSession, new_session_id
from ..session.send_watch import Expired
from .close_reason import close_reason
from .commands import apply_command, errors_to_client
from .idle import Activity, read_until_idle
from .realtime_protocol import (
    MSGPACK_SUBPROTOCOL,
    decode_msgpack_frame,
    decode_text_frame,
    encode_event_msgpack,
    parse_command,
)

log = logging.getLogger(__name__)

CLOSE_NORMAL, CLOSE_POLICY, CLOSE_INTERNAL, CLOSE_IDLE = 1000, 1008, 1011, 4408


def query_patch(params: Any) -> dict[str, Any]:
    """`?engine=&voice=&format=&sample_rate=` preset the session."""
    patch: dict[str, Any] = {}
    for key in ("engine", "voice"):
        if params.get(key):
            patch[key] = params[key]
    output: dict[str, Any] = {}
    if params.get("format"):
        output["encoding"] = params["format"]
    if params.get("sample_rate"):
        try:
            output["sample_rate"] = int(params["sample_rate"])
        except ValueError:
            raise ConfigError("sample_rate", "must be an integer") from None
    if output:
        patch["output"] = output
    return patch


class Connection:
    """One WebSocket carrying one session, in JSON or msgpack framing."""

    def __init__(self, websocket: WebSocket, msgpack_mode: bool) -> None:
        self.ws = websocket
        self.msgpack = msgpack_mode

    async def send_event(self, event: dict[str, Any]) -> None:
        if self.msgpack:
            await self.ws.send_bytes(encode_event_msgpack(event))
        else:
            await self.ws.send_text(json.dumps(event))

    async def send_audio(self, data: bytes, context_id: str) -> None:
        if self.msgpack:
            await self.ws.send_bytes(encode_event_msgpack(server_events.audio(context_id, data)))
        else:
            await self.ws.send_bytes(data)

    async def close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close(code=code, reason=close_reason(reason))


async def realtime_endpoint(websocket: WebSocket) -> None:
    gw: Gateway = websocket.app.state.gateway
    msgpack_mode = MSGPACK_SUBPROTOCOL in websocket.scope.get("subprotocols", [])
    await websocket.accept(subprotocol=MSGPACK_SUBPROTOCOL if msgpack_mode else None)
    conn = Connection(websocket, msgpack_mode)
    with ExitStack() as stack:
        try:
            stack.enter_context(gw.limiter.acquire(extract_key(websocket.headers, websocket.query_params)))
        except LimitExceeded as exc:
            await conn.send_event(server_events.error("too_many_sessions", str(exc)))
            await conn.close(CLOSE_POLICY, str(exc))
            return
        try:
            config = apply_update(SessionConfig(), query_patch(websocket.query_params))
            session = RealtimeSession(
                gw.session_deps(), session_id=new_session_id(), config=config, transport="websocket"
            )
            session.api_key = extract_key(websocket.headers, websocket.query_params)
        except ConfigError as exc:
            await conn.send_event(server_events.error("invalid_config", str(exc)))
            await conn.close(CLOSE_POLICY, str(exc))
            return
        session.text_source = "websocket"
        await serve_session(gw, session, conn)


class SessionTransport(Protocol):
    """What a session is served over: a WebSocket, a Twilio stream, a WebRTC peer."""

    async def send_event(self, event: dict[str, Any]) -> None: ...

    async def send_audio(self, data: bytes, context_id: str) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


Receiver = Callable[[Gateway, RealtimeSession, Any], Awaitable[tuple[int, str] | None]]


async def serve_session(
    gw: Gateway, session: RealtimeSession, conn: SessionTransport, *, receive: Receiver | None = None
) -> None:
    """Run a session on a connection until either side ends it; `receive` reads the client's frames."""
    session_id_var.set(session.id)
    if not gw.sessions.add(session):
        await conn.close(CLOSE_POLICY, f"session '{session.id}' already exists")
        return
    gw.metrics.active_sessions.labels(session.transport).inc()
    log.info("session opened", extra={"session_id": session.id, "transport": session.transport})
    session.emit(server_events.session_created(session.describe()))
    runner = asyncio.create_task(
        session.run(conn.send_audio, conn.send_event, send_timeout_s=gw.settings.send_timeout_s)
    )
    receiver = asyncio.create_task((receive or _receive)(gw, session, conn))
    code, reason = CLOSE_NORMAL, "session closed"
    try:
        done, _ = await asyncio.wait({runner, receiver}, return_when=asyncio.FIRST_COMPLETED)
        ended = runner if runner in done else receiver
        exc = ended.exception()
        if exc is not None:
            code, reason = close_for(exc, session)
        elif ended is receiver and (result := receiver.result()) is not None:
            code, reason = result
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
        log.info("session closed", extra={"session_id": session.id, "code": code, "reason": reason})
        await conn.close(code, reason)


def close_for(exc: BaseException, session: RealtimeSession) -> tuple[int, str]:
    """The close code and reason for a session that ended with `exc` on either side."""
    if isinstance(exc, TimeoutError):
        return CLOSE_POLICY, "client stopped reading audio"
    if isinstance(exc, OutboxOverflow):
        log.warning("client not reading its events", extra={"session_id": session.id})
        return CLOSE_POLICY, "client stopped reading its events"
    if isinstance(exc, WebSocketDisconnect | OSError):
        return CLOSE_NORMAL, "client went away"
    log.error("session failed", exc_info=exc, extra={"session_id": session.id})
    return CLOSE_INTERNAL, "internal error"


def quiet_since(session: RealtimeSession, activity: Activity) -> float | None:
    """When the client last sent something and the session last sent it something; None while audio
    or events are still queued for it."""
    if len(session.outbox):
        return None
    return max(activity.last, session.last_sent_at)


async def close_idle(session: RealtimeSession, idle_s: float) -> tuple[int, str]:
    session.emit(server_events.error("idle_timeout", f"no message for {idle_s:g} s"))
    await asyncio.sleep(0.05)  # let the writer send it
    return CLOSE_IDLE, "idle timeout"


async def _receive(gw: Gateway, session: RealtimeSession, conn: Connection) -> tuple[int, str] | None:
    """Read frames until the client leaves; returns a close (code, reason) when we end it."""
    idle = gw.settings.idle_timeout_s
    activity = Activity(session.clock)
    result = await read_until_idle(
        _read_frames(gw, session, conn, activity), idle_s=idle, quiet_since=lambda: quiet_since(session, activity),
        clock=session.clock,
    )  # fmt: skip
    return await close_idle(session, idle) if isinstance(result, Expired) else None


async def _read_frames(gw: Gateway, session: RealtimeSession, conn: Connection, activity: Activity) -> None:
    max_text = gw.settings.max_text_chars
    while True:
        message = await conn.ws.receive()
        activity.touch()
        if message["type"] == "websocket.disconnect":
            return
        with errors_to_client(gw, session):
            command = None
            if message.get("text") is not None:
                if conn.msgpack:
                    raise ClientError("invalid_frame", "the msgpack subprotocol uses binary frames only")
                command = parse_command(decode_text_frame(message["text"]), max_text_chars=max_text)
            elif message.get("bytes") is not None:
                if conn.msgpack:
                    command = parse_command(decode_msgpack_frame(message["bytes"]), max_text_chars=max_text)
                else:
                    session.feed_uplink(message["bytes"])
            if command is not None:
                apply_command(session, command)


routes = [WebSocketRoute("/v1/realtime", realtime_endpoint)]
