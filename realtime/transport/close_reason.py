"""A WebSocket close reason that always fits its frame.

A close frame's payload is at most 125 bytes: the 2-byte code and at most 123 bytes of UTF-8
reason (RFC 6455 §5.5). A longer reason makes the WebSocket library raise instead of closing,
which the client sees as 1006 and the server logs as a traceback.
"""

from __future__ import annotations

MAX_REASON_BYTES = 123


def close_reason(text: str) -> str:
    """`text` as UTF-8 cut to `MAX_REASON_BYTES` on a character boundary (marked with "...")."""
    data = text.encode("utf-8", "backslashreplace")
    if len(data) <= MAX_REASON_BYTES:
        return data.decode("utf-8")
    return data[: MAX_REASON_BYTES - 3].decode("utf-8", "ignore") + "..."
