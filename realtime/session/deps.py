"""What a realtime session needs from the process around it, and nothing more.

A session resolves engine and voice names, opens speech contexts, counts what it
sends, and holds a saturated engine's first audio for the planner's startup hold.
`SessionDeps` carries exactly that (plus its limits and clock), so `session/`
imports neither the gateway nor any transport, and a test builds a whole session
from a scripted engine and a `FakeClock`. The gateway builds the real one
(`Gateway.session_deps`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..control.voices import Selection
from .clock import Clock, MonotonicClock
from .context import SpeechContext
from .limits import SessionLimits


class SessionMetrics(Protocol):
    """A session's counters, bound to its transport (the writer calls them once per frame)."""

    def audio_sent(self, seconds: float) -> None: ...

    def underrun(self) -> None: ...

    def first_audio(self, engine: str, seconds: float) -> None:
        """Time to first audio of a context: its first segment cut → its first frame sent."""

    def interrupted(self, reason: str) -> None: ...

    def phrasing(self, segments: int, mid_phrase_cuts: int, pause_s: float) -> None:
        """A finished context's segments, how many ended mid-phrase, the silence its pauses gained."""


class NullMetrics:
    """Counts nothing (tests, tools)."""

    def audio_sent(self, seconds: float) -> None:
        pass

    def underrun(self) -> None:
        pass

    def first_audio(self, engine: str, seconds: float) -> None:
        pass

    def interrupted(self, reason: str) -> None:
        pass

    def phrasing(self, segments: int, mid_phrase_cuts: int, pause_s: float) -> None:
        pass


class NewContext(Protocol):
    """Opens one context's synthesis (the gateway's: shared scheduler, planner settings, limits)."""

    def __call__(
        self,
        selection: Selection,
        *,
        speed: float,
        session_id: str,
        context_id: str,
        low_latency: bool,
        text_mode: str,
        ssml: bool,
    ) -> SpeechContext: ...


def _no_metrics(transport: str) -> SessionMetrics:
    return NullMetrics()


@dataclass(frozen=True)
class SessionDeps:
    resolve: Callable[[str | None, str | None], Selection]
    """Engine and voice names (None: the defaults) → an engine and one of its voices; raises
    `UnknownModel` / `UnknownVoice`."""
    new_context: NewContext
    metrics_for: Callable[[str], SessionMetrics] = _no_metrics
    """The counters for a transport's sessions."""
    start_hold_s: float = 0.0
    """How long a saturated engine's first audio may be held back (`planner.loaded_start_hold_ms`)."""
    limits: SessionLimits = field(default_factory=SessionLimits)
    clock: Clock = field(default_factory=MonotonicClock)
