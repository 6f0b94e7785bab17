"""Failover inside a speech context: the rules, and what a context asks of the process for it.

A context speaks on one engine at a time. It moves to the next engine of its fallback
chain (`failover.fallbacks`) when its engine

- fails a job (`error`): at once, the failed segment is synthesized again on the fallback;
- stalls (`stall`): a job has brought no audio for `stall_ms`, or, when more audio than that
  is buffered ahead of it, until `stall_ms` before the listener would run out (`stall_deadline`);
- cannot take new work when the next segment starts (`not_ready`: unloaded or failed,
  `draining`: being unloaded, `degraded`: it failed another context moments ago).

The segment is the unit of failover. Every unfinished job of the failed engine is synthesized
again on the fallback, whole: a job whose audio the listener has not begun to hear is simply
replaced, so no text is lost and nothing is heard twice. Only when the primary dies in the
middle of the segment being heard is there a seam: what was heard of it ends with a 10 ms fade
and the fallback says that segment from its start (its first words are heard twice; the
alternative, going on from the next segment, would lose the rest of it). Finished jobs keep
their audio. A context that moved stays on its fallback to its end (its voice does not change
back mid-answer) and reports `degraded`; new contexts return to the primary once it is usable
again (`engines/health.py`).

Pure: the context (`context.py`) does the glue; the gateway provides `EngineSource`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Protocol

from ..engines.base import Engine

ERROR, STALL = "error", "stall"
"""Reasons that count against the engine's health: it failed a context."""
NOT_READY, DRAINING, DEGRADED = "not_ready", "draining", "degraded"
"""Reasons a context leaves an engine at a segment boundary without it having failed it."""


@dataclass(frozen=True)
class EngineLease:
    """An engine a context may use, the voice it speaks there, and how to let go of it."""

    name: str
    engine: Engine
    voice: str
    release: Callable[[], None]


class EngineSource(Protocol):
    """What a context needs from the process to fail over (the gateway's registry behind it)."""

    def unusable(self, name: str) -> str | None:
        """Why `name` should take no new work now (`not_ready`, `draining`, `degraded`); None if it can."""

    def fallback(self, failed: str, *, voice: str, speed: float, skip: Collection[str]) -> EngineLease | None:
        """The first usable engine of `failed`'s chain, not in `skip`, that can honour `speed`, with
        the voice to use there (`voice` if it has it, else its default); None if there is none."""

    def failed_over(self, source: str, target: str, reason: str) -> None:
        """Count the move; `error` and `stall` also mark `source` degraded for new contexts."""

    def succeeded(self, name: str, started_at: float) -> None:
        """A job started at `started_at` completed with audio on `name` (a degraded engine recovers)."""


def stall_deadline(*, progress_at: float, run_dry_at: float, stall_s: float) -> float:
    """When a job that last brought audio (or started) at `progress_at` counts as stalled, if the
    listener runs out of the audio ahead of it at `run_dry_at`.

    Never sooner than `stall_s` after its last progress: a healthy engine is not abandoned for a
    hiccup. Later when the buffer allows: `stall_s` before the listener runs dry, which leaves the
    fallback that long to bring its first audio. The gap a listener can hear is therefore at most
    `stall_s` plus the fallback's time to first audio, less the audio that was buffered."""
    return max(progress_at + stall_s, run_dry_at - stall_s)


def counts_against_engine(reason: str) -> bool:
    return reason in (ERROR, STALL)
