"""Reading a JSON object from a request body, with errors in the OpenAI shape."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from .errors import ApiError


async def read_json_object(request: Request, *, max_bytes: int | None = None) -> dict[str, Any]:
    """The body as a JSON object (`{}` when empty); 400 when it is not one, 413 past `max_bytes`."""
    raw = await request.body()
    if max_bytes is not None and len(raw) > max_bytes:
        raise ApiError(413, f"The request body is larger than {max_bytes} bytes.", code="body_too_large")
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiError(400, "The request body is not valid JSON.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.", code="invalid_json")
    return body
