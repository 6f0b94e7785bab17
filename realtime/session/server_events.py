"""Builders for the events a realtime session sends its client (docs/REALTIME.md).

Every server event is built here and nowhere else, so its fields and rounding are
written once for every transport: a dialect that renames or drops events
(Twilio's `mark` and `clear`) maps these, it does not build its own. Events are
plain dicts because they go straight to JSON or msgpack.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from .events import SpokenWord

ServerEvent = dict[str, Any]


def error(code: str, message: str, context_id: str | None = None) -> ServerEvent:
    """A recoverable mistake or failure: the session stays open (codes: docs/REALTIME.md)."""
    event: ServerEvent = {"type": "error", "code": code, "message": message}
    if context_id is not None:
        event["context_id"] = context_id
    return event


def session_created(info: Mapping[str, Any]) -> ServerEvent:
    """The first event of a session: its id, configuration and limits (`RealtimeSession.describe`)."""
    return {"type": "session.created", **info}


def session_updated(info: Mapping[str, Any]) -> ServerEvent:
    return {"type": "session.updated", **info}


def session_attached(info: Mapping[str, Any]) -> ServerEvent:
    """The first event on a control socket attached to a session."""
    return {"type": "session.attached", **info}


def session_closed(code: int, reason: str) -> ServerEvent:
    """The last event where the carriage has no close frame of its own (a WebRTC data channel)."""
    return {"type": "session.closed", "code": int(code), "reason": reason}


def segment_started(context_id: str, segment_id: int, text: str, *, degraded: bool = False) -> ServerEvent:
    """`degraded`: the segment is synthesized on a fallback engine (its primary failed or is unavailable)."""
    return {"type": "segment.started", "context_id": context_id, "segment_id": segment_id, "text": text,
            "degraded": degraded}  # fmt: skip


def segment_done(context_id: str, segment_id: int, audio_ms: float) -> ServerEvent:
    return {"type": "segment.done", "context_id": context_id, "segment_id": segment_id,
            "audio_ms": round(audio_ms, 1)}  # fmt: skip


def alignment(context_id: str, segment_id: int, words: Iterable[SpokenWord]) -> ServerEvent:
    """When words are heard, in ms from the start of the context's audio (what the client has been
    sent of it, seams and pauses included); `char_start`/`char_end` index the segment's text as
    `segment.started` gave it. Sent before the audio that speaks them."""
    return {
        "type": "alignment", "context_id": context_id, "segment_id": segment_id,
        "words": [
            {"word": w.word, "start_ms": round(w.start_ms, 1), "end_ms": round(w.end_ms, 1),
             "char_start": w.char_start, "char_end": w.char_end}
            for w in words
        ],
    }  # fmt: skip


def context_done(context_id: str, audio_ms: float) -> ServerEvent:
    return {"type": "context.done", "context_id": context_id, "audio_ms": round(audio_ms, 1)}


def speech_interrupted(context_id: str, reason: str, *, sent_ms: float, played_ms: float) -> ServerEvent:
    """A context stopped: nothing more of it follows. `sent_ms` counts the closing fade."""
    return {"type": "speech.interrupted", "context_id": context_id, "reason": reason,
            "sent_ms": round(sent_ms, 1), "played_ms": round(played_ms, 1)}  # fmt: skip


def vad(kind: Literal["speech_started", "speech_stopped"], audio_ms: float) -> ServerEvent:
    """`vad.speech_started` / `vad.speech_stopped` at `audio_ms` into the uplink stream."""
    return {"type": f"vad.{kind}", "audio_ms": round(audio_ms, 1)}


def metrics(
    context_id: str, *, ttfa_ms: float | None, rtf: float | None, buffer_ms: float, chunk: int,
    underruns: int, engine: str, queue_depth: int, degraded: bool = False,
) -> ServerEvent:  # fmt: skip
    """Per segment with `metrics: true` (docs/REALTIME.md, "Audio out and pacing")."""
    return {
        "type": "metrics",
        "context_id": context_id,
        "ttfa_ms": None if ttfa_ms is None else round(ttfa_ms, 1),
        "rtf": None if rtf is None else round(rtf, 3),
        "buffer_ms": round(buffer_ms, 1),
        "chunk": chunk,
        "underruns": underruns,
        "engine": engine,
        "queue_depth": queue_depth,
        "degraded": degraded,
    }


def playback_mark(name: str | None) -> ServerEvent:
    """A telephony provider's echo that audio up to a mark has played (for the control socket)."""
    return {"type": "playback.mark", "name": name}


def dtmf(digit: str | None) -> ServerEvent:
    return {"type": "dtmf", "digit": digit}


def audio(context_id: str, data: bytes) -> ServerEvent:
    """Output audio as an event, for framings that carry audio inside messages (msgpack)."""
    return {"type": "audio", "context_id": context_id, "audio": data}
