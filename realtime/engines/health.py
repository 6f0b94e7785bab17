"""Whether new contexts should use an engine that failed them recently: a small circuit breaker.

A context whose engine errors or stalls moves to a fallback (`session/failover.py`) and
reports it here. From then on the engine is *degraded*: new contexts start on its fallback
instead of finding out the hard way. After `retry_after_s` new contexts try it again; the
first job started after the failure that completes with audio marks it healthy, and a new
failure restarts the wait. Running contexts never move back (a voice change mid-answer is
audible). Pure: the caller passes the time.
"""

from __future__ import annotations


class EngineHealth:
    def __init__(self, retry_after_s: float = 10.0) -> None:
        self.retry_after_s = retry_after_s
        self.failed_at: float | None = None
        """When the engine last failed a context; None while healthy."""
        self.reason: str | None = None
        self.failures = 0
        """Failures since the engine was last healthy."""

    @property
    def degraded(self) -> bool:
        return self.failed_at is not None

    def record_failure(self, now: float, reason: str) -> None:
        self.failed_at = now
        self.reason = reason
        self.failures += 1

    def record_success(self, started_at: float) -> None:
        """A job that started at `started_at` completed with audio: healthy again, unless it started
        before the last failure (a context that had not noticed says nothing about recovery)."""
        if self.failed_at is not None and started_at >= self.failed_at:
            self.reset()

    def available(self, now: float) -> bool:
        """New contexts may start on it: healthy, or degraded long enough ago to try again."""
        return self.failed_at is None or now - self.failed_at >= self.retry_after_s

    def reset(self) -> None:
        """Healthy (a recovery, or a fresh load of the engine)."""
        self.failed_at = None
        self.reason = None
        self.failures = 0

    def describe(self, now: float) -> dict[str, object]:
        if self.failed_at is None:
            return {"degraded": False}
        return {
            "degraded": True,
            "reason": self.reason,
            "failures": self.failures,
            "retry_in_s": round(max(0.0, self.retry_after_s - (now - self.failed_at)), 1),
        }
