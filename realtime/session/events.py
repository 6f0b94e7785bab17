"""What a speech context reports to its transport, in order."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SegmentStarted:
    segment_id: int
    text: str
    degraded: bool = False
    """Synthesized on a fallback engine (docs/REALTIME.md, "Failover")."""


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
