"""A session's contexts: opened on their first text, spoken in order, bounded.

Text without a `context_id` goes to the *implicit* context; named contexts open on
their first `text.append`. The speaker takes them one at a time in the order they
were opened. A context it has finished stays *draining*, still interruptible,
until the listener has heard it to the end by the playout clock; a barge-in in
an answer's last `lead_ms` must still stop what the client has buffered. The
table enforces the limits a client could abuse: contexts open at once, characters
per context, and how many finished ids it remembers.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..audio.resample import StreamResampler
from .config import OutputConfig
from .context import SpeechContext
from .errors import ClientError
from .limits import SessionLimits
from .playout import BurstPacer, PlayoutClock

FINISHED_IDS = 256
"""Finished context ids remembered (a reused one is refused); older ones may open anew."""


@dataclass
class ContextSlot:
    """One context as its session sees it: synthesis, framing, pacing and what was sent of it."""

    id: str
    context: SpeechContext
    output: OutputConfig
    resampler: StreamResampler
    pacer: BurstPacer
    pending: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16))
    """Resampled audio not yet cut into a whole frame."""
    sent_samples: int = 0
    queued_samples: int = 0
    playout_offset_s: float | None = None
    """Where its first frame fell on the session's playout clock."""
    played_ms_reported: float | None = None
    """The client's own `playback.position`, if it sends one."""
    interrupted: bool = False
    text_done: bool = False
    first_sent_at: float | None = None
    held: list[Any] = field(default_factory=list)
    """Audio and events held back by a `StartupHold`, in order."""

    @classmethod
    def create(cls, context_id: str, context: SpeechContext, output: OutputConfig) -> ContextSlot:
        lead_s = None if output.lead_ms is None else output.lead_ms / 1000.0
        return cls(
            context_id,
            context,
            output,
            StreamResampler(context.sample_rate, output.sample_rate),
            BurstPacer(lead_s, output.frame_samples / output.sample_rate),
        )

    def sent_ms(self) -> float:
        return self.sent_samples * 1000.0 / self.output.sample_rate

    def estimated_played_ms(self, playout: PlayoutClock, now: float) -> float:
        """What the pacing clock says the listener has heard of this context."""
        if self.playout_offset_s is None:
            return 0.0
        played = (playout.played_s(now) - self.playout_offset_s) * 1000.0
        return max(0.0, min(played, self.sent_ms()))

    def played_ms(self, playout: PlayoutClock, now: float) -> float:
        """The client's report if it sent one (never past what was sent), else the estimate."""
        if self.played_ms_reported is not None:
            return min(self.played_ms_reported, self.sent_ms())
        return self.estimated_played_ms(playout, now)

    def played_out(self, playout: PlayoutClock, now: float) -> bool:
        """All of it was sent and heard, by the clock (the client's reports may lag or never come)."""
        return (
            self.sent_samples >= self.queued_samples
            and self.estimated_played_ms(playout, now) >= self.sent_ms()
        )


class ContextTable:
    def __init__(
        self, limits: SessionLimits, open_slot: Callable[[str], ContextSlot],
        played_out: Callable[[ContextSlot], bool],
    ) -> None:  # fmt: skip
        self.limits = limits
        self._open_slot = open_slot
        """Starts a context's synthesis (raises ClientError if it cannot, e.g. the engine is loading)."""
        self._played_out = played_out
        self.open: OrderedDict[str, ContextSlot] = OrderedDict()
        """Speaking or waiting to, in the order they were opened."""
        self.draining: OrderedDict[str, ContextSlot] = OrderedDict()
        """Spoken (all audio queued) but not yet played out: still interruptible."""
        self.finished: deque[str] = deque(maxlen=FINISHED_IDS)
        self.implicit: str | None = None
        self.current: ContextSlot | None = None
        """The context the speaker is in: the only one whose cancellation it must see through."""
        self.closing = False
        self._ids = itertools.count(1)
        self._added = asyncio.Event()

    # -- text commands ----------------------------------------------------------------------

    def append(self, text: str, context_id: str | None = None) -> str:
        slot = self._slot(context_id, create=True)
        assert slot is not None
        if slot.text_done or slot.interrupted:
            raise ClientError("context_finished", f"context '{slot.id}' has already finished", slot.id)
        try:
            slot.context.append(text)
        except ValueError as exc:
            raise ClientError("text_too_long", str(exc), slot.id) from None
        return slot.id

    def flush(self, context_id: str | None = None) -> None:
        slot = self._slot(context_id, create=False)
        if slot is not None:
            slot.context.flush()
        elif context_id is not None and context_id not in self.finished:
            raise ClientError("unknown_context", f"no open context '{context_id}'", context_id)

    def done(self, context_id: str | None = None) -> None:
        slot = self._slot(context_id, create=False)
        if slot is None:
            if context_id is not None and context_id not in self.finished:
                raise ClientError("unknown_context", f"no open context '{context_id}'", context_id)
            return
        slot.text_done = True
        slot.context.done()
        if self.implicit == slot.id:
            self.implicit = None

    def close_when_done(self) -> None:
        """Finish every open context; the speaker ends once they are spoken."""
        self.closing = True
        for slot in list(self.open.values()):
            if not slot.text_done:
                self.done(slot.id)
        self._added.set()

    def report_played(self, context_id: str | None, played_ms: float) -> None:
        """`playback.position`: the client has played this much of a context (default: the one it
        hears now, the oldest not yet played out)."""
        if context_id:
            slot = self.find(context_id)
        else:
            self.prune_draining()
            slot = next(iter(self.draining.values()), None) or next(iter(self.open.values()), None)
        if slot is not None:
            slot.played_ms_reported = max(slot.played_ms_reported or 0.0, played_ms)

    # -- lookups ----------------------------------------------------------------------------

    def find(self, context_id: str) -> ContextSlot | None:
        """An open or draining context."""
        return self.open.get(context_id) or self.draining.get(context_id)

    @property
    def speaking(self) -> bool:
        return any(not self._played_out(s) for s in self.draining.values()) or any(
            not s.interrupted for s in self.open.values()
        )

    def _open(self, context_id: str | None) -> ContextSlot:
        if context_id is None:
            context_id = f"ctx-{next(self._ids)}"
            while context_id in self.open or context_id in self.finished:
                context_id = f"ctx-{next(self._ids)}"
        # A cancelled context leaves at once, except the one speaking, which leaves when the speaker has
        # wound it up; until then it does not count, up to a point: the table stays bounded.
        live = sum(1 for s in self.open.values() if not s.interrupted)
        if live >= self.limits.max_contexts or len(self.open) >= 2 * self.limits.max_contexts:
            raise ClientError(
                "too_many_contexts", f"at most {self.limits.max_contexts} contexts may be open", context_id
            )
        slot = self._open_slot(context_id)
        self.open[context_id] = slot
        self._added.set()
        return slot

    def _slot(self, context_id: str | None, *, create: bool) -> ContextSlot | None:
        if context_id is None:
            if self.implicit is not None:
                slot = self.open.get(self.implicit)
                if slot is not None and not slot.text_done and not slot.interrupted:
                    return slot  # after a cancel, text without a context_id starts a new context
            if not create:
                return None
            slot = self._open(None)
            self.implicit = slot.id
            return slot
        slot = self.open.get(context_id)
        if slot is None and create:
            if context_id in self.finished:
                raise ClientError(
                    "context_finished", f"context '{context_id}' has already finished", context_id
                )
            slot = self._open(context_id)
        return slot

    # -- the speaker's side -----------------------------------------------------------------

    async def next(self) -> ContextSlot | None:
        """The oldest open context, once there is one; None when closing and all are spoken."""
        while True:
            if self.open:
                return next(iter(self.open.values()))
            if self.closing:
                return None
            self._added.clear()
            await self._added.wait()

    def retire(self, slot: ContextSlot) -> None:
        """The speaker is done with `slot`: it drains (unless interrupted) until played out."""
        self.open.pop(slot.id, None)
        self.finished.append(slot.id)
        if not slot.interrupted:
            self.draining[slot.id] = slot
            self.prune_draining()
            while len(self.draining) > self.limits.max_contexts:
                self.draining.popitem(last=False)

    def drop_interrupted(self, slot: ContextSlot) -> None:
        """An interrupted context leaves at once, unless the speaker is in it (it retires it)."""
        self.draining.pop(slot.id, None)
        if slot is not self.current and self.open.pop(slot.id, None) is not None:
            self.finished.append(slot.id)  # never started speaking: nothing for the speaker to reap

    def prune_draining(self) -> None:
        """Forget the finished contexts the listener has heard to the end."""
        for slot in [s for s in self.draining.values() if self._played_out(s)]:
            del self.draining[slot.id]

    def cancel_all(self) -> None:
        for slot in self.open.values():
            slot.context.cancel()
