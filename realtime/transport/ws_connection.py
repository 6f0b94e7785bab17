"""A session carried over a WebSocket: the part every WebSocket dialect shares.

A dialect subclasses `WebSocketConnection` and says how the session's events and
audio look on its wire (`send_event`, `send_audio`); reading its messages goes
through `receive`, which stamps the connection's activity for the idle timeout.
Closing never raises (the client may be gone) and the reason always fits the frame.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from starlette.types import Message
from starlette.websockets import WebSocket

from ..session.server_events import ServerEvent
from .close_reason import close_reason
from .idle import Activity


class WebSocketConnection:
    def __init__(self, websocket: WebSocket) -> None:
        self.ws = websocket

    async def send_event(self, event: ServerEvent) -> None:
        raise NotImplementedError

    async def send_audio(self, data: bytes, context_id: str) -> None:
        raise NotImplementedError

    async def send_json(self, message: Any) -> None:
        await self.ws.send_text(json.dumps(message))

    async def receive(self, activity: Activity) -> Message | None:
        """The next message from the client; None once it has gone."""
        message = await self.ws.receive()
        activity.touch()
        return None if message["type"] == "websocket.disconnect" else message

    async def close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close(code=code, reason=close_reason(reason))
