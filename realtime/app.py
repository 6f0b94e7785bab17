"""The ASGI application: routes, middleware, error handlers and lifespan."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from .control import health
from .control.middleware import GatewayMiddleware
from .control.settings import Settings, load_settings
from .gateway import Gateway
from .text.sanitize import printable
from .transport import admin_api, captioned, orpheus_compat, rest, sessions_api, twilio, webrtc, websocket
from .transport.close_codes import CloseCode
from .transport.close_reason import close_reason
from .transport.errors import CLIENT_CLOSED_REQUEST, ApiError

log = logging.getLogger(__name__)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    request.app.state.gateway.metrics.errors.labels(exc.code or str(exc.status)).inc()
    return exc.response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    # A 405 carries `Allow` (RFC 9110 §15.5.6): Starlette puts it on the exception.
    return ApiError(exc.status_code, str(exc.detail), code=code, headers=exc.headers).response()


async def _client_gone(request: Request, exc: Exception) -> Response:
    """A client that disconnects while its body is still arriving: nothing to answer, nothing to
    log beyond one line (anyone could otherwise flood the log with half-sent requests)."""
    log.debug("client disconnected before its request body was complete", extra={"path": request.url.path})
    return Response(status_code=CLIENT_CLOSED_REQUEST)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return JSONResponse(
        {"error": {"message": "internal server error", "type": "server_error", "param": None, "code": None}},
        status_code=500,
    )


async def unknown_websocket(websocket: WebSocket) -> None:
    """No WebSocket endpoint at this path: a 404 whose body says so. The framework's default, a
    close before accepting, reaches the client as a bare HTTP 403, which every vendor client reports
    as a bad API key. Where the server cannot send an HTTP response, the socket closes with a reason."""
    error = ApiError(
        404, f"No WebSocket endpoint at '{printable(websocket.url.path)}'; realtime sessions are at "
        "/v1/realtime, Twilio Media Streams at /v1/telephony/twilio.", code="not_found",
    )  # fmt: skip
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(error.response())
    else:
        await websocket.accept()
        await websocket.close(code=CloseCode.POLICY, reason=close_reason(error.message))


def web_dir(settings: Settings) -> Path | None:
    """The browser page's folder: the setting, else `web/` beside the package (a source checkout)."""
    folder = settings.web_dir or Path(__file__).resolve().parent.parent / "web"
    return folder if (folder / "index.html").is_file() else None


async def index(request: Request) -> Response:
    folder = web_dir(request.app.state.gateway.settings)
    if folder is None:
        return await info(request)
    return FileResponse(folder / "index.html", headers={"cache-control": "no-cache"})


async def info(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    return JSONResponse(
        {
            "name": "realtime-voice-gateway",
            "engines": list(gw.engines.engines),  # loaded or loading (not unloaded)
            "default_engine": gw.engines.default,
            "capabilities": {name: asdict(e.info.capabilities) for name, e in gw.engines.engines.items()},
            "ready": gw.ready,
            "endpoints": [
                "/v1/audio/speech",
                "/v1/audio/speech/captioned",
                "/v1/realtime",
                "/v1/webrtc/offer",
                "/v1/telephony/twilio",
                "/v1/sessions/{session_id}",
                "/v1/models",
                "/v1/audio/voices",
                "/v1/engines",
                "/v1/config",
                "/speak",
                "/health",
                "/ready",
                "/metrics",
            ],
        }
    )


def create_app(settings: Settings | None = None, gateway: Gateway | None = None) -> Starlette:
    """Build the app; engines load in the background once the server starts."""
    settings = settings or load_settings()
    gw = gateway or Gateway(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        gw.start_loading()
        try:
            yield
        finally:
            await app.state.webrtc_peers.close_all()
            await gw.stop()

    app = Starlette(
        routes=[
            Route("/", index, methods=["GET"]),
            Route("/v1/info", info, methods=["GET"]),
            *health.routes,
            *rest.routes,
            *captioned.routes,
            *websocket.routes,
            *twilio.routes,
            *sessions_api.routes,
            *webrtc.routes,
            *admin_api.routes,
            *orpheus_compat.routes,
            WebSocketRoute("/{path:path}", unknown_websocket),
            *_static_mount(settings),
        ],
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            ClientDisconnect: _client_gone,
            Exception: _server_error,
        },
        lifespan=lifespan,
    )
    app.state.gateway = gw
    app.state.webrtc_peers = webrtc.WebRtcPeers()
    app.add_middleware(GatewayMiddleware, gateway=gw)
    return app


def _static_mount(settings: Settings) -> list[Mount]:
    folder = web_dir(settings)
    return [Mount("/web", app=StaticFiles(directory=folder), name="web")] if folder else []


def gateway_server(app: Starlette, settings: Settings, **overrides: object) -> uvicorn.Server:
    """The server the CLI and tests run: a stalled client's connection is reset after `unacked_timeout_s`."""
    from .server import GatewayServer

    return GatewayServer(
        uvicorn_config(app, settings, **overrides), unacked_timeout_s=settings.unacked_timeout_s
    )


def uvicorn_config(app: Starlette, settings: Settings, **overrides: object) -> uvicorn.Config:
    """The one place uvicorn is configured, so the CLI and tests apply the same limits."""
    from .server import header_deadline_protocol

    options: dict[str, object] = {
        "http": header_deadline_protocol(settings.header_timeout_s),
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "ws_max_size": settings.max_frame_bytes,
        "ws_per_message_deflate": settings.websocket_compression,
        "ws_ping_interval": 20.0,
        "ws_ping_timeout": 20.0,
        "timeout_graceful_shutdown": 5,
        "lifespan": "on",
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)  # type: ignore[arg-type]
