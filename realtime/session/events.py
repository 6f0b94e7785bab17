"""What a speech context reports to its transport, in order."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..text.spoken import SpokenText


@dataclass(frozen=True)
class SegmentStarted:
    segment_id: int
    text: str
    """The segment as written (what the client sent), not what the engine read."""
    degraded: bool = False
    """Synthesized on a fallback engine (docs/REALTIME.md, "Failover")."""
    spoken: SpokenText | None = None
    """What the engine read, with the map back to `text` (`SpokenText.to_original`): word timings in
    the engine's terms become offsets in what the client sent."""


@dataclass(frozen=True)
class AudioOut:
    samples: np.ndarray
    """float32 mono at the engine's sample rate."""


@dataclass(frozen=True)
class SpokenWord:
    """When a word is heard, in ms from the start of the context's audio (pauses and seams included)."""

    word: str
    start_ms: float
    end_ms: float
    char_start: int
    """Offsets of the word in its segment's text (`SegmentStarted.text`)."""
    char_end: int


@dataclass(frozen=True)
class WordsOut:
    """Words of a segment, from an engine that times them, before the audio that speaks them."""

    segment_id: int
    words: tuple[SpokenWord, ...]


@dataclass(frozen=True)
class SegmentDone:
    segment_id: int
    audio_ms: float


@dataclass(frozen=True)
class ContextError:
    code: str
    message: str


@dataclass(frozen=True)
class ContextDone:
    audio_ms: float
    cancelled: bool = False


ContextEvent = SegmentStarted | AudioOut | WordsOut | SegmentDone | ContextError | ContextDone
