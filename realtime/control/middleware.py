"""ASGI middleware: request ids, authentication, and request counting.

Written as plain ASGI (not BaseHTTPMiddleware) so streaming responses pass
through untouched and WebSocket scopes are handled too.
"""

from __future__ import annotations

import logging
import uuid

from starlette.datastructures import Headers, QueryParams
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from ..gateway import Gateway
from ..transport.close_codes import CloseCode
from ..transport.errors import CLIENT_CLOSED_REQUEST, ApiError
from .auth import extract_key
from .logs import request_id

log = logging.getLogger(__name__)

PUBLIC_PATHS = frozenset({"/health", "/ready", "/"})
PUBLIC_PREFIXES = ("/web/",)
"""The browser page and its assets: it asks for the API key itself."""


def _route_label(scope: Scope) -> str:
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"


class GatewayMiddleware:
    def __init__(self, app: ASGIApp, gateway: Gateway) -> None:
        self.app = app
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        rid = headers.get("x-request-id") or uuid.uuid4().hex[:16]
        request_id.set(rid)
        path = scope["path"]
        if self.gateway.auth.enabled and path not in PUBLIC_PATHS and not path.startswith(PUBLIC_PREFIXES):
            key = extract_key(headers, QueryParams(scope.get("query_string", b"").decode("latin-1")))
            if not self.gateway.auth.check(key):
                await self._deny(scope, receive, send)
                return
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", rid.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if scope["type"] == "http":
                self.gateway.metrics.requests.labels(_route_label(scope), str(status)).inc()
                if status >= 400 and status != CLIENT_CLOSED_REQUEST:  # the client left: nothing failed
                    log.info("request failed", extra={"path": path, "status": status})

    async def _deny(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.gateway.metrics.errors.labels("invalid_api_key").inc()
        if scope["type"] == "websocket":
            ws = WebSocket(scope, receive, send)
            await ws.accept()  # a close before accept is a bare HTTP 403: accept so the reason arrives
            await ws.close(code=CloseCode.POLICY, reason="invalid or missing API key")
            return
        error = ApiError(
            401, "Invalid or missing API key (Authorization: Bearer <key>).", code="invalid_api_key"
        )
        await error.response()(scope, receive, send)
