"""`GET /v1/realtime`: the native realtime protocol over WebSocket (JSON or msgpack).

A thin adapter over the transport runtime: frames in become commands for the
session (`realtime_protocol`, `commands`), the session's events and audio become
frames out (`NativeConnection`). The runtime opens, serves and closes the session.
"""

from __future__ import annotations

import json
from functools import partial

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from ..control.auth import extract_key
from ..session import server_events
from ..session.errors import ClientError
from ..session.realtime import RealtimeSession
from .close_codes import Close
from .commands import apply_command
from .idle import Activity
from .realtime_protocol import (
    MSGPACK_SUBPROTOCOL,
    decode_msgpack_frame,
    decode_text_frame,
    encode_event_msgpack,
    parse_command,
    query_patch,
)
from .runtime import Opening, SessionRuntime
from .ws_connection import WebSocketConnection

TRANSPORT = "websocket"


class NativeConnection(WebSocketConnection):
    """One WebSocket carrying one session, in JSON or msgpack framing."""

    def __init__(self, websocket: WebSocket, msgpack_mode: bool) -> None:
        super().__init__(websocket)
        self.msgpack = msgpack_mode

    async def send_event(self, event: server_events.ServerEvent) -> None:
        if self.msgpack:
            await self.ws.send_bytes(encode_event_msgpack(event))
        else:
            await self.ws.send_text(json.dumps(event))

    async def send_audio(self, data: bytes, context_id: str) -> None:
        if self.msgpack:
            await self.ws.send_bytes(encode_event_msgpack(server_events.audio(context_id, data)))
        else:
            await self.ws.send_bytes(data)


async def realtime_endpoint(websocket: WebSocket) -> None:
    runtime = SessionRuntime.of(websocket.app)
    msgpack_mode = MSGPACK_SUBPROTOCOL in websocket.scope.get("subprotocols", [])
    await websocket.accept(subprotocol=MSGPACK_SUBPROTOCOL if msgpack_mode else None)
    conn = NativeConnection(websocket, msgpack_mode)
    key = extract_key(websocket.headers, websocket.query_params)
    opening = Opening(
        TRANSPORT, key, preset=lambda: query_patch(websocket.query_params), text_source=TRANSPORT
    )

    async def receive(session: RealtimeSession) -> Close | None:
        return await runtime.until_idle(session, partial(_read_frames, runtime, session, conn))

    await runtime.run(conn, api_key=key, opening=opening, receive=receive)


async def _read_frames(
    runtime: SessionRuntime, session: RealtimeSession, conn: NativeConnection, activity: Activity
) -> None:
    max_text = runtime.settings.max_text_chars
    while (message := await conn.receive(activity)) is not None:
        with runtime.client_errors(session):
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
