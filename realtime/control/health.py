"""Liveness, readiness and metrics endpoints."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..gateway import Gateway


def _gateway(request: Request) -> Gateway:
    return request.app.state.gateway


async def health(request: Request) -> Response:
    """The process is up and serving HTTP (engines may still be loading)."""
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> Response:
    """Safe to route traffic here: nothing is loading, and the default engine and every engine that
    failed to load have an engine that takes work (themselves or a fallback)."""
    gw = _gateway(request)
    engines = {name: e.ready for name, e in gw.engines.engines.items()}
    ready = gw.ready
    body: dict[str, object] = {"status": "ready" if ready else "loading", "engines": engines}
    if gw.engines.load_errors:
        # A failed engine whose fallback serves leaves the replica ready, but says so.
        body["status"] = "degraded" if ready else "failed"
        body["errors"] = gw.engines.load_errors
    return JSONResponse(body, status_code=200 if ready else 503)


async def metrics(request: Request) -> Response:
    return Response(_gateway(request).metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


routes = [
    Route("/health", health, methods=["GET"]),
    Route("/ready", ready, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
