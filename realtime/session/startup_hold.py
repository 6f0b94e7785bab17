"""When a context's first audio may start playing on a saturated engine.

On a saturated engine the next segment waits for a worker (jobs are not preemptible),
and a short first segment can play out before it arrives: a stutter a fraction of a
second into the answer. When the engine is saturated as the first audio arrives, the
audio is held until the second segment's audio arrives, the context ends, or
`max_s` passes: a slightly later start instead of a gap. On an idle engine nothing is
held, so the time to first audio of a lone session is unchanged. Pure: times are passed in.
"""

from __future__ import annotations


class StartupHold:
    """Holds one context's first audio back; `RealtimeSession` tells it what arrives."""

    def __init__(self, max_s: float) -> None:
        self.max_s = max_s
        self.decided = False
        self._segments = 0
        self._until: float | None = None

    def decide(self, now: float, *, saturated: bool) -> None:
        self.decided = True
        if saturated and self.max_s > 0:
            self._until = now + self.max_s

    def segment_started(self) -> None:
        self._segments += 1

    def audio_arrived(self) -> None:
        if self._segments >= 2:
            self._until = None  # the second segment's audio is here: the gap is covered

    def holding(self) -> bool:
        return self._until is not None

    @property
    def until(self) -> float | None:
        """When the hold ends at the latest; None when not holding."""
        return self._until

    def remaining(self, now: float) -> float | None:
        return None if self._until is None else max(0.0, self._until - now)

    def release(self) -> None:
        self._until = None
