"""Interruption (barge-in, `context.cancel`): stop a context so that nothing more of it is heard.

Synthesis is cancelled, the context's unsent frames are purged from the outbox,
at most 10 ms of them go out faded to silence (a cut mid-waveform clicks), then
`speech.interrupted` with what was sent and what the listener heard. Nothing of
the context can follow that event: the speaker re-checks `interrupted` after every
wait. The playout clock forgets what the listener drops, so the next answer is not
paced behind audio nobody will hear.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from ..audio.fade import fade_out
from . import server_events as events
from .clock import Clock
from .contexts import ContextSlot, ContextTable
from .deps import SessionMetrics
from .errors import ClientError
from .outbox import AudioFrame, Outbox, full_frame
from .playout import PlayoutClock

log = logging.getLogger(__name__)

HISTORY = 64
"""`speech.interrupted` events kept for the control API (a client may cancel forever)."""


class Interrupter:
    def __init__(
        self, contexts: ContextTable, outbox: Outbox, playout: PlayoutClock, clock: Clock, *,
        emit: Callable[[dict[str, Any]], None], metrics: SessionMetrics, session_id: str,
    ) -> None:  # fmt: skip
        self.contexts = contexts
        self.outbox = outbox
        self.playout = playout
        self.clock = clock
        self.emit = emit
        self.metrics = metrics
        self.session_id = session_id
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY)
        """The latest `speech.interrupted` events."""
        self.count = 0

    def interrupt(self, reason: str, context_id: str | None = None) -> list[str]:
        """Stop a context (default: every open or draining one) now; returns the ids interrupted."""
        contexts = self.contexts
        contexts.prune_draining()
        if context_id is not None:
            slot = contexts.find(context_id)
            if slot is None:
                if context_id in contexts.finished:
                    return []  # played out already: nothing left to stop
                raise ClientError("unknown_context", f"no open context '{context_id}'", context_id)
            targets = [slot] if not slot.interrupted else []
        else:
            targets = [*contexts.draining.values(), *(s for s in contexts.open.values() if not s.interrupted)]
        for slot in targets:
            self._stop(slot, reason)
            contexts.drop_interrupted(slot)
        return [s.id for s in targets]

    def _stop(self, slot: ContextSlot, reason: str) -> None:
        if slot.interrupted:
            return
        slot.interrupted = True
        slot.context.cancel()
        dropped = self.outbox.purge(slot.id)
        upcoming = np.concatenate([f.pcm for f in dropped] + [slot.pending]) if dropped else slot.pending
        slot.pending = np.zeros(0, np.int16)
        slot.held.clear()
        # Fade out the audio that was about to play, so the cut does not click (none if none played).
        fade = fade_out(upcoming, slot.output.sample_rate) if slot.sent_samples else upcoming[:0]
        if fade.size:
            fade = full_frame(fade, slot.output.frame_samples)
            # Straight behind the last queued frame; nothing of this context is queued after it.
            self.outbox.put_audio_now(AudioFrame(fade, slot.id, slot.output))
        now = self.clock.now()
        event = events.speech_interrupted(
            slot.id, reason, sent_ms=slot.sent_ms() + fade.size * 1000.0 / slot.output.sample_rate,
            played_ms=slot.played_ms(self.playout, now),
        )  # fmt: skip
        self.history.append(event)
        self.count += 1
        if slot.sent_samples:  # the listener drops what it has of this context (a queued one had none)
            self.playout.truncate(now)
        self.emit(event)
        self.metrics.interrupted(reason)
        log.info("speech interrupted", extra={"session_id": self.session_id, **event})
