"""Twilio Media Streams at `/v1/telephony/twilio` (the gateway is the WebSocket server).

Twilio sends JSON text frames: `connected`, `start` (stream and call ids,
media format, `customParameters`), `media` (base64 μ-law 8 kHz, 20 ms), `mark`
(echoed when our audio up to that mark has played), `dtmf`, `stop`. We send
`media` frames of exactly 20 ms paced in real time, a `mark` named after each
context when it has been sent, and `clear` when barge-in is detected in the
caller's audio. The call's text comes from the session control API
(`/v1/sessions/{id}/...`); `customParameters` may set `session_id`, `engine`
and `voice`.

A connection takes its session slot when it is accepted, so sockets waiting for
`start` count against the limits; `start` must arrive within `idle_timeout_s`.
During a call Twilio sends media every 20 ms, so a socket silent that long (while
we send nothing either) is a dead call: both close with 4408 "idle timeout".
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import re
from contextlib import ExitStack
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from ..control.auth import LimitExceeded, extract_key
from ..gateway import Gateway
from ..session import server_events
from ..session.config import ConfigError, SessionConfig, apply_update
from ..session.errors import ClientError
from ..session.realtime import RealtimeSession
from ..session.send_watch import Expired
from .idle import Activity, read_until_idle
from .websocket import CLOSE_IDLE, CLOSE_POLICY, Connection, close_idle, quiet_since, serve_session

log = logging.getLogger(__name__)

MAX_SESSION_ID = 128
SESSION_ID = re.compile(r"[A-Za-z0-9._:@-]+")
"""What a call's session id may hold: it becomes part of the control API's URLs and of log lines."""
TWILIO_LEAD_MS = 100.0
"""Twilio plays what it receives; a small lead absorbs network jitter without delaying barge-in."""


class TwilioConnection(Connection):
    """Maps session output onto Twilio's message shapes."""

    def __init__(self, websocket: WebSocket, stream_sid: str) -> None:
        super().__init__(websocket, msgpack_mode=False)
        self.stream_sid = stream_sid

    async def send_audio(self, data: bytes, context_id: str) -> None:
        payload = base64.b64encode(data).decode("ascii")
        await self.ws.send_text(
            json.dumps({"event": "media", "streamSid": self.stream_sid, "media": {"payload": payload}})
        )

    async def send_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "context.done":
            message = {"event": "mark", "streamSid": self.stream_sid, "mark": {"name": event["context_id"]}}
        elif kind == "speech.interrupted":
            message = {"event": "clear", "streamSid": self.stream_sid}
        else:
            return  # other events reach the control API's observers only
        await self.ws.send_text(json.dumps(message))


def _parse(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return message if isinstance(message, dict) else None


async def twilio_endpoint(websocket: WebSocket) -> None:
    gw: Gateway = websocket.app.state.gateway
    await websocket.accept()
    key = extract_key(websocket.headers, websocket.query_params)
    with ExitStack() as stack:
        # The slot is taken before `start`: a socket that never sends it still counts.
        try:
            stack.enter_context(gw.limiter.acquire(key))
        except LimitExceeded as exc:
            await _close(websocket, CLOSE_POLICY, str(exc))
            return
        try:
            start = await asyncio.wait_for(_wait_for_start(websocket), timeout=gw.settings.idle_timeout_s)
        except TimeoutError:
            await _close(websocket, CLOSE_IDLE, "idle timeout")
            return
        if start is None:
            return
        await _serve_call(gw, websocket, start, key)


async def _serve_call(gw: Gateway, websocket: WebSocket, start: dict[str, Any], key: str | None) -> None:
    """Validate `start` and serve the call; the caller holds the session slot."""
    info = start.get("start") if isinstance(start.get("start"), dict) else {}
    stream_sid = str(start.get("streamSid") or info.get("streamSid") or "")
    params = info.get("customParameters") if isinstance(info.get("customParameters"), dict) else {}
    media = info.get("mediaFormat") if isinstance(info.get("mediaFormat"), dict) else {}
    if media and (media.get("encoding") != "audio/x-mulaw" or str(media.get("sampleRate")) != "8000"):
        await _close(websocket, CLOSE_POLICY, "only audio/x-mulaw at 8000 Hz is supported")
        return
    session_id = str(params.get("session_id") or stream_sid or "")
    if not stream_sid or not session_id:
        await _close(websocket, CLOSE_POLICY, "start without a streamSid")
        return
    if len(session_id) > MAX_SESSION_ID:
        await _close(websocket, CLOSE_POLICY, f"session_id longer than {MAX_SESSION_ID} characters")
        return
    if not SESSION_ID.fullmatch(session_id):  # it goes into URLs, log lines and close reasons
        await _close(websocket, CLOSE_POLICY, "session_id may only hold letters, digits and . _ : @ -")
        return
    if gw.sessions.get(session_id, key) is not None:  # ids are per API key: others' stay invisible
        await _close(websocket, CLOSE_POLICY, f"session '{session_id}' already exists")
        return
    patch: dict[str, Any] = {
        "output": {"encoding": "mulaw", "sample_rate": 8000, "frame_ms": 20, "lead_ms": TWILIO_LEAD_MS},
        "input_audio": {"encoding": "mulaw", "sample_rate": 8000},
    }
    for name in ("engine", "voice"):
        if params.get(name):
            patch[name] = params[name]
    conn = TwilioConnection(websocket, stream_sid)
    try:
        session = RealtimeSession(
            gw.session_deps(),
            session_id=session_id,
            config=apply_update(SessionConfig(), patch),
            transport="twilio",
        )
    except ConfigError as exc:
        await conn.close(CLOSE_POLICY, str(exc))
        return
    session.api_key = key
    await serve_session(gw, session, conn, receive=_twilio_receive)


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    await Connection(websocket, msgpack_mode=False).close(code, reason)


async def _wait_for_start(websocket: WebSocket) -> dict[str, Any] | None:
    """Skip `connected`; return the `start` message (None if the call ends first)."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return None
        event = _parse(message.get("text"))
        if event is None:
            continue
        if event.get("event") == "start":
            return event
        if event.get("event") == "stop":
            await websocket.close(code=1000)
            return None


def _on_twilio_message(session: RealtimeSession, event: dict[str, Any]) -> bool:
    """Handle one Twilio message; False when the call is over."""
    kind = event.get("event")
    if kind == "media":
        media = event.get("media") if isinstance(event.get("media"), dict) else {}
        if media.get("track", "inbound") not in ("inbound", "inbound_track"):
            return True
        try:
            payload = base64.b64decode(media.get("payload", ""), validate=True)
        except (binascii.Error, ValueError, TypeError):
            session.emit(server_events.error("invalid_media", "media payload is not base64"))
            return True
        with contextlib.suppress(ClientError):
            session.feed_uplink(payload)
    elif kind == "mark":
        name = (event.get("mark") or {}).get("name") if isinstance(event.get("mark"), dict) else None
        session.emit(server_events.playback_mark(name))
    elif kind == "dtmf":
        digit = (event.get("dtmf") or {}).get("digit") if isinstance(event.get("dtmf"), dict) else None
        session.emit(server_events.dtmf(digit))
    elif kind == "stop":
        return False
    return True


async def _twilio_receive(gw: Gateway, session: RealtimeSession, conn: Connection) -> tuple[int, str] | None:
    """Read Twilio's messages until the call ends; a silent socket (media stopped) is a dead call."""
    idle = gw.settings.idle_timeout_s
    activity = Activity(session.clock)
    result = await read_until_idle(
        _read_call(session, conn, activity), idle_s=idle, quiet_since=lambda: quiet_since(session, activity),
        clock=session.clock,
    )  # fmt: skip
    return await close_idle(session, idle) if isinstance(result, Expired) else result


async def _read_call(
    session: RealtimeSession, conn: Connection, activity: Activity
) -> tuple[int, str] | None:
    while True:
        message = await conn.ws.receive()
        activity.touch()
        if message["type"] == "websocket.disconnect":
            return None
        event = _parse(message.get("text"))
        if event is None:
            session.emit(server_events.error("invalid_json", "Twilio frames are JSON text"))
            continue
        if not _on_twilio_message(session, event):
            return 1000, "call ended"


routes = [WebSocketRoute("/v1/telephony/twilio", twilio_endpoint)]
