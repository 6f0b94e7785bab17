"""What one realtime session may hold: the limits a client could otherwise abuse."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SessionLimits:
    max_text_chars: int = 10_000
    """Characters per `text.append`."""
    max_context_chars: int = 100_000
    """Characters buffered in one context."""
    max_contexts: int = 16
    """Contexts open (speaking or queued) at once."""
    max_frame_bytes: int = 1 << 20
    max_queued_events: int = 10_000
    """Events waiting unsent before the client is deemed not to read them (the session is closed)."""
    context_timeout_s: float = 20.0
    """A speaking context left open (all its text said, none for this long) while a later one waits
    is finished as if `text.done` had arrived, with a `context_timeout` error; 0: never."""

    def describe(self) -> dict[str, int]:
        return {"max_text_chars": self.max_text_chars, "max_context_chars": self.max_context_chars,
                "max_contexts": self.max_contexts, "max_frame_bytes": self.max_frame_bytes}  # fmt: skip
