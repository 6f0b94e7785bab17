"""Reading a JSON object from a request body, with errors in the OpenAI shape."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from .errors import ApiError

MAX_JSON_BODY = 256 * 1024
"""Default cap on a JSON request body: far above any valid request (4,096 characters of speech input,
or one `text.append`'s worth, even escaped), far below what would strain memory."""


async def read_json_object(request: Request, *, max_bytes: int = MAX_JSON_BODY) -> dict[str, Any]:
    """The body as a JSON object (`{}` when empty); 400 when it is not one, 413 past `max_bytes`.

    The size is checked as the body streams in (and from Content-Length first), so an oversized body is
    refused without being held in memory."""
    too_large = ApiError(413, f"The request body is larger than {max_bytes} bytes.", code="body_too_large")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise too_large
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError(400, "The request body is not valid JSON.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.", code="invalid_json")
    return body
