"""The native realtime protocol (v1), sans I/O: client messages in, typed commands out.

Wire formats: JSON text frames plus binary audio frames, or, with the
`realtime.msgpack.v1` subprotocol, msgpack maps in binary frames (audio in a
`bytes` field: client `{"type": "input_audio", "audio": b"..."}`, server
`{"type": "audio", "context_id": ..., "audio": b"..."}`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgpack

from ..session.config import ConfigError
from ..session.errors import ClientError
from ..text.sanitize import InvalidText, clean_text

MSGPACK_SUBPROTOCOL = "realtime.msgpack.v1"
CONTEXT_ID_MAX = 128


@dataclass(frozen=True)
class Command:
    type: str
    context_id: str | None = None
    text: str = ""
    played_ms: float = 0.0
    patch: dict[str, Any] | None = None
    audio: bytes = b""


CLIENT_TYPES = (
    "session.update", "text.append", "text.flush", "text.done", "context.cancel",
    "playback.position", "session.close", "input_audio",
)  # fmt: skip


def decode_text_frame(data: str) -> dict[str, Any]:
    try:
        message = json.loads(data)
    except ValueError as exc:
        raise ClientError("invalid_json", f"frame is not valid JSON: {exc}") from None
    except RecursionError:
        raise ClientError("invalid_json", "frame nests JSON too deeply") from None
    return _require_object(message)


def decode_msgpack_frame(data: bytes) -> dict[str, Any]:
    try:
        message = msgpack.unpackb(data, raw=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise ClientError("invalid_msgpack", f"frame is not valid msgpack: {exc}") from None
    return _require_object(message)


def _require_object(message: object) -> dict[str, Any]:
    if not isinstance(message, dict):
        raise ClientError("invalid_message", "a message must be an object with a 'type'")
    return message


def _context_id(message: dict[str, Any]) -> str | None:
    value = message.get("context_id")
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > CONTEXT_ID_MAX:
        raise ClientError("invalid_field", f"context_id must be a string of 1..{CONTEXT_ID_MAX} characters")
    return value


def parse_command(message: dict[str, Any], *, max_text_chars: int) -> Command:
    """Validate one client message; ClientError says what is wrong."""
    kind = message.get("type")
    if not isinstance(kind, str):
        raise ClientError("invalid_message", "message has no string 'type'")
    if kind not in CLIENT_TYPES:
        raise ClientError("unknown_type", f"unknown message type '{kind[:64]}'")
    context_id = _context_id(message)
    if kind == "text.append":
        text = message.get("text")
        if not isinstance(text, str):
            raise ClientError("invalid_field", "text.append needs a string 'text'", context_id)
        try:
            text = clean_text(text)
        except InvalidText as exc:
            raise ClientError(InvalidText.code, str(exc), context_id) from None
        if len(text) > max_text_chars:
            raise ClientError(
                "text_too_long",
                f"text.append carries {len(text)} characters; the limit is {max_text_chars}",
                context_id,
            )
        return Command(kind, context_id, text=text)
    if kind == "session.update":
        patch = {k: v for k, v in message.items() if k not in ("type", "session")}
        if isinstance(message.get("session"), dict):  # also accept {"session": {...}}
            patch.update(message["session"])
        return Command(kind, patch=patch)
    if kind == "playback.position":
        played = _finite_non_negative(message.get("played_ms"))
        if played is None:
            raise ClientError(
                "invalid_field", "playback.position needs a finite, non-negative 'played_ms'", context_id
            )
        return Command(kind, context_id, played_ms=played)
    if kind == "input_audio":
        audio = message.get("audio")
        if not isinstance(audio, bytes | bytearray):
            raise ClientError("invalid_field", "input_audio needs a bytes 'audio' field")
        return Command(kind, audio=bytes(audio))
    return Command(kind, context_id)


def _finite_non_negative(value: object) -> float | None:
    """`value` as a float if it is a finite number ≥ 0 (a 400-digit integer overflows float)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def encode_event_msgpack(event: dict[str, Any]) -> bytes:
    return msgpack.packb(event, use_bin_type=True)


def query_patch(params: Mapping[str, str]) -> dict[str, Any]:
    """`?engine=&voice=&format=&sample_rate=` preset the session (a `session.update` patch)."""
    patch: dict[str, Any] = {}
    for key in ("engine", "voice"):
        if params.get(key):
            patch[key] = params[key]
    output: dict[str, Any] = {}
    if params.get("format"):
        output["encoding"] = params["format"]
    if params.get("sample_rate"):
        try:
            output["sample_rate"] = int(params["sample_rate"])
        except ValueError:
            raise ConfigError("sample_rate", "must be an integer") from None
    if output:
        patch["output"] = output
    return patch
