"""Reading a JSON object from a request body, with errors in the OpenAI shape."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import Request

from .errors import ApiError

MAX_JSON_BODY = 256 * 1024
"""Default cap on a JSON request body: far above any valid request (4,096 characters of speech input,
or one `text.append`'s worth, even escaped), far below what would strain memory."""


BODY_TIMEOUT_S = 30.0


async def read_json_object(
    request: Request, *, max_bytes: int = MAX_JSON_BODY, timeout_s: float = BODY_TIMEOUT_S
) -> dict[str, Any]:
    """The body as a JSON object (`{}` when empty); 400 when it is not one, 413 past `max_bytes`, 408
    when it has not arrived whole within `timeout_s` (callers pass the `body_timeout_s` setting).

    The size is checked as the body streams in (and from Content-Length first), so an oversized body is
    refused without being held in memory. A client that disconnects mid-body raises `ClientDisconnect`."""
    too_large = ApiError(413, f"The request body is larger than {max_bytes} bytes.", code="body_too_large")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large

    async def read() -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)

    try:
        raw = await asyncio.wait_for(read(), timeout_s)
    except asyncio.TimeoutError:
        raise ApiError(
            408, f"The request body did not arrive within {timeout_s:g} s.", code="body_timeout",
            headers={"Connection": "close"},
        ) from None  # fmt: skip
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError(400, "The request body is not valid JSON.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.", code="invalid_json")
    return body
