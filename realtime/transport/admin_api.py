"""Admin API: engines loaded, unloaded and reconfigured while the server runs; hot settings.

- `GET /v1/engines[/{name}]`: every configured engine with its state, error, health, voices,
  device, queue depth and recent speed; the process's resident memory.
- `POST /v1/engines/{name}/load`, `/unload`: start a background load, or drain and unload
  (202 with the engine's state; 409 while the engine is in a state that forbids it).
- `PUT /v1/engines/{name}`: add an engine (`{"engine": "piper", "settings": {...}}`) or give one
  new settings (a loaded one reloads beside the serving instance, then switches over).
- `GET /v1/config`, `PATCH /v1/config`: the settings (secrets left out) and a change of the hot ones.

The state machine and draining live in the registry (`engines/registry.py`); this module maps
HTTP onto it. Every route needs an admin key once keys are configured (`control/auth.py`).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..control.auth import extract_key
from ..control.hot_config import HOT_FIELDS, ConfigPatchError, hot_view, public_view
from ..control.settings import CoreSettings
from ..control.voices import is_openai_model
from ..engines.base import EngineError
from ..engines.managed import ManagedEngine
from ..engines.memory import rss_mb
from ..engines.registry import ENGINES, EngineBusy, spec
from ..gateway import Gateway
from ..text.sanitize import printable
from .errors import ApiError
from .json_body import read_json_object

ENGINE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")


def _admin(request: Request) -> Gateway:
    """The gateway, for a caller holding an admin key (when keys are configured)."""
    gw: Gateway = request.app.state.gateway
    status = gw.auth.admin_status(extract_key(request.headers, request.query_params))
    if status == 401:
        raise ApiError(
            401, "Invalid or missing admin key (Authorization: Bearer <key>).", code="invalid_api_key"
        )
    if status == 403:
        raise ApiError(
            403, "This route needs an admin key (REALTIME_ADMIN_KEYS); this key is a regular one.",
            code="admin_key_required",
        )  # fmt: skip
    return gw


def _describe(gw: Gateway, entry: ManagedEngine) -> dict[str, Any]:
    registry = gw.engines
    return {
        **entry.describe(registry.clock()),
        "default": entry.name == registry.default,
        "fallbacks": registry.chain(entry.name),
    }


def _entry(gw: Gateway, name: str) -> ManagedEngine:
    entry = gw.engines.entry(name)
    if entry is None:
        known = ", ".join(e.name for e in gw.engines.entries())
        raise ApiError(
            404, f"no engine '{printable(name)}' is configured; configured: {known}", param="name",
            code="engine_not_found",
        )  # fmt: skip
    return entry


async def list_engines(request: Request) -> Response:
    gw = _admin(request)
    rss = rss_mb()
    return JSONResponse({
        "object": "list", "default_engine": gw.engines.default,
        "rss_mb": None if rss is None else round(rss, 1),
        "data": [_describe(gw, e) for e in gw.engines.entries()],
    })  # fmt: skip


async def get_engine(request: Request) -> Response:
    gw = _admin(request)
    return JSONResponse(_describe(gw, _entry(gw, request.path_params["name"])))


async def load_engine(request: Request) -> Response:
    gw = _admin(request)
    entry = _entry(gw, request.path_params["name"])
    try:
        gw.engines.load(entry.name)
    except (EngineBusy, EngineError) as exc:
        raise ApiError(409, str(exc), code="engine_busy") from None
    return JSONResponse(_describe(gw, entry), status_code=202)


async def unload_engine(request: Request) -> Response:
    gw = _admin(request)
    entry = _entry(gw, request.path_params["name"])
    gw.engines.unload(entry.name)
    return JSONResponse(_describe(gw, entry), status_code=202)


def _settings_for(kind: str, entry: ManagedEngine | None, given: object, defaults: BaseModel) -> BaseModel:
    """The engine's settings: `given` over its current ones (same kind) or the configured defaults."""
    if not isinstance(given, dict):
        raise ApiError(400, "'settings' must be an object.", param="settings", code="invalid_type")
    base = entry.config if entry is not None and entry.kind == kind and entry.config is not None else defaults
    try:
        return spec(kind).settings_model().model_validate({**base.model_dump(), **given})
    except ValidationError as exc:
        error = exc.errors()[0]
        where = "settings." + ".".join(str(p) for p in error["loc"])
        raise ApiError(400, f"{where}: {error['msg']}", param=where, code="invalid_value") from None


async def put_engine(request: Request) -> Response:
    """`{"engine"?: kind, "settings"?: {...}, "fallbacks"?: [...], "load"?: bool}`: add or reconfigure."""
    gw = _admin(request)
    name = request.path_params["name"]
    body = await read_json_object(request, timeout_s=gw.settings.body_timeout_s)
    entry = gw.engines.entry(name)
    created = entry is None
    if entry is None and (
        not ENGINE_NAME.fullmatch(name) or is_openai_model(name) or name in CoreSettings.model_fields
    ):
        raise ApiError(
            400, f"'{printable(name)}' cannot name an engine: letters, digits, '_', '.', '-' (a letter first), "
            "and not an OpenAI model id or a setting's name", param="name", code="invalid_value",
        )  # fmt: skip
    kind = body.get("engine") or (entry.kind if entry is not None else name)
    if kind not in ENGINES:
        raise ApiError(
            400, f"unknown engine kind '{printable(str(kind))}'; known: {', '.join(sorted(ENGINES))}",
            param="engine", code="invalid_value",
        )  # fmt: skip
    defaults = getattr(gw.settings, kind)
    try:
        if "settings" in body or entry is None or entry.kind != kind:
            config = _settings_for(kind, entry, body.get("settings", {}), defaults)
            entry = gw.engines.configure(name, kind, config)
        if "fallbacks" in body:
            gw.patch_settings(
                {"failover": {"fallbacks": {**gw.settings.failover.fallbacks, name: body["fallbacks"]}}}
            )
        if body.get("load"):
            gw.engines.load(name)
    except ConfigPatchError as exc:
        raise ApiError(400, str(exc), param="fallbacks", code="invalid_value") from None
    except EngineBusy as exc:
        raise ApiError(409, str(exc), code="engine_busy") from None
    except EngineError as exc:  # an engine that cannot be built with these settings (a missing folder)
        raise ApiError(400, str(exc), param="settings", code="invalid_value") from None
    assert entry is not None
    return JSONResponse(_describe(gw, entry), status_code=201 if created else 200)


async def get_config(request: Request) -> Response:
    gw = _admin(request)
    return JSONResponse(
        {"settings": public_view(gw.settings), "hot": hot_view(gw.settings), "hot_fields": HOT_FIELDS}
    )


async def patch_config(request: Request) -> Response:
    """A partial settings document of hot fields; new contexts use it, running ones keep theirs."""
    gw = _admin(request)
    body = await read_json_object(request, timeout_s=gw.settings.body_timeout_s)
    try:
        new = gw.patch_settings(body)
    except ConfigPatchError as exc:
        code = "not_hot" if exc.field in body and exc.field not in HOT_FIELDS else "invalid_value"
        raise ApiError(400, str(exc), param=exc.field, code=code) from None
    return JSONResponse({"hot": hot_view(new), "hot_fields": HOT_FIELDS})


routes = [
    Route("/v1/engines", list_engines, methods=["GET"]),
    Route("/v1/engines/{name}", get_engine, methods=["GET"]),
    Route("/v1/engines/{name}", put_engine, methods=["PUT"]),
    Route("/v1/engines/{name}/load", load_engine, methods=["POST"]),
    Route("/v1/engines/{name}/unload", unload_engine, methods=["POST"]),
    Route("/v1/config", get_config, methods=["GET"]),
    Route("/v1/config", patch_config, methods=["PATCH"]),
]
