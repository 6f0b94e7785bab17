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

An adapter over the transport runtime (`runtime.py`), which opens, serves and
closes the session: this file only maps Twilio's messages to session calls and back.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import re
from functools import partial
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from ..control.auth import extract_key
from ..session import server_events
from ..session.errors import ClientError
from ..session.realtime import RealtimeSession
from .close_codes import Close, CloseCode
from .idle import Activity
from .runtime import Opening, Refused, SessionRuntime
from .ws_connection import WebSocketConnection

TRANSPORT = "twilio"
MAX_SESSION_ID = 128
SESSION_ID = re.compile(r"[A-Za-z0-9._:@-]+")
"""What a call's session id may hold: it becomes part of the control API's URLs and of log lines."""
TWILIO_LEAD_MS = 100.0
"""Twilio plays what it receives; a small lead absorbs network jitter without delaying barge-in."""


class TwilioConnection(WebSocketConnection):
    """Maps session output onto Twilio's message shapes (the stream's id comes with `start`)."""

    def __init__(self, websocket: WebSocket) -> None:
        super().__init__(websocket)
        self.stream_sid = ""

    async def send_audio(self, data: bytes, context_id: str) -> None:
        payload = base64.b64encode(data).decode("ascii")
        await self.send_json({"event": "media", "streamSid": self.stream_sid, "media": {"payload": payload}})

    async def send_event(self, event: server_events.ServerEvent) -> None:
        kind = event.get("type")
        if kind == "context.done":
            message = {"event": "mark", "streamSid": self.stream_sid, "mark": {"name": event["context_id"]}}
        elif kind == "speech.interrupted":
            message = {"event": "clear", "streamSid": self.stream_sid}
        else:
            return  # other events reach the control API's observers only
        await self.send_json(message)


def _parse(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return message if isinstance(message, dict) else None


async def twilio_endpoint(websocket: WebSocket) -> None:
    runtime = SessionRuntime.of(websocket.app)
    await websocket.accept()
    key = extract_key(websocket.headers, websocket.query_params)
    conn = TwilioConnection(websocket)

    async def opening() -> Opening | None:
        # Read inside the runtime's slot: a socket that never sends `start` still counts.
        try:
            start = await asyncio.wait_for(_wait_for_start(conn), timeout=runtime.settings.idle_timeout_s)
        except TimeoutError:
            raise Refused("idle_timeout", "idle timeout", close=CloseCode.IDLE) from None
        return None if start is None else _call(start, key, conn)

    async def receive(session: RealtimeSession) -> Close | None:
        """A silent socket (media stopped) is a dead call."""
        return await runtime.until_idle(session, partial(_read_call, session, conn))

    await runtime.run(conn, api_key=key, opening=opening, receive=receive)


def _call(start: dict[str, Any], key: str | None, conn: TwilioConnection) -> Opening:
    """The session a `start` message asks for; `Refused` says what is wrong with it."""
    info = start.get("start") if isinstance(start.get("start"), dict) else {}
    stream_sid = str(start.get("streamSid") or info.get("streamSid") or "")
    params = info.get("customParameters") if isinstance(info.get("customParameters"), dict) else {}
    media = info.get("mediaFormat") if isinstance(info.get("mediaFormat"), dict) else {}
    if media and (media.get("encoding") != "audio/x-mulaw" or str(media.get("sampleRate")) != "8000"):
        raise Refused("invalid_start", "only audio/x-mulaw at 8000 Hz is supported")
    session_id = str(params.get("session_id") or stream_sid or "")
    if not stream_sid or not session_id:
        raise Refused("invalid_start", "start without a streamSid")
    if len(session_id) > MAX_SESSION_ID:
        raise Refused("invalid_start", f"session_id longer than {MAX_SESSION_ID} characters")
    if not SESSION_ID.fullmatch(session_id):  # it goes into URLs, log lines and close reasons
        raise Refused("invalid_start", "session_id may only hold letters, digits and . _ : @ -")
    patch: dict[str, Any] = {
        "output": {"encoding": "mulaw", "sample_rate": 8000, "frame_ms": 20, "lead_ms": TWILIO_LEAD_MS},
        "input_audio": {"encoding": "mulaw", "sample_rate": 8000},
    }
    for name in ("engine", "voice"):
        if params.get(name):
            patch[name] = params[name]
    conn.stream_sid = stream_sid
    return Opening(TRANSPORT, key, preset=patch, session_id=session_id)


async def _wait_for_start(conn: TwilioConnection) -> dict[str, Any] | None:
    """Skip `connected`; return the `start` message (None if the call ends first)."""
    while True:
        message = await conn.ws.receive()
        if message["type"] == "websocket.disconnect":
            return None
        event = _parse(message.get("text"))
        if event is None:
            continue
        if event.get("event") == "start":
            return event
        if event.get("event") == "stop":
            await conn.close(CloseCode.NORMAL, "")
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


async def _read_call(session: RealtimeSession, conn: TwilioConnection, activity: Activity) -> Close | None:
    while (message := await conn.receive(activity)) is not None:
        event = _parse(message.get("text"))
        if event is None:
            session.emit(server_events.error("invalid_json", "Twilio frames are JSON text"))
            continue
        if not _on_twilio_message(session, event):
            return Close(CloseCode.NORMAL, "call ended")
    return None


routes = [WebSocketRoute("/v1/telephony/twilio", twilio_endpoint)]
