"""How a realtime connection ends: the close codes docs/REALTIME.md documents, in one place.

A transport without close frames (a WebRTC data channel) sends the same code in a
`session.closed` event instead; reasons go through `close_reason` to fit their frame.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple


class CloseCode(IntEnum):
    NORMAL = 1000
    """`session.close` done, the client left, a call ended."""
    POLICY = 1008
    """Refused (limits, configuration, key) or a client that stopped reading."""
    TOO_BIG = 1009
    """A message over `max_frame_bytes` (closed by the WebSocket server itself)."""
    INTERNAL = 1011
    """A bug: logged with its traceback."""
    IDLE = 4408
    """`idle_timeout_s` with no client message and nothing to say."""


class Close(NamedTuple):
    """How a session ended: what the client is told."""

    code: CloseCode
    reason: str
