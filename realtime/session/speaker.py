"""The speaker: contexts in order → frames in the outbox, never more than `lead_ms` ahead.

One task per session. It takes the oldest open context, reads its events
(segments, audio, errors), resamples the audio and cuts it into `frame_ms` frames,
and queues them, waiting whenever the listener has `lead_ms` or more still to
hear (`BurstPacer` on the playout clock). Events are queued in order with the audio.
Two things may delay a context's first audio or end it early:

- a startup hold: on a saturated engine the first audio waits for the second
  segment (`StartupHold`: a later start instead of a stutter);
- abandonment: a context that said all its text and got none for
  `context_timeout_s` while a later one waits is finished as if `text.done` came.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from ..audio.pcm import float_to_int16
from . import server_events as events
from .clock import Clock
from .contexts import ContextSlot, ContextTable
from .deps import SessionMetrics
from .events import AudioOut, ContextDone, ContextError, SegmentDone, SegmentStarted, WordsOut
from .limits import SessionLimits
from .outbox import AudioFrame, Outbox, full_frame
from .playout import PlayoutClock
from .send_watch import CHECKS_PER_TIMEOUT
from .startup_hold import StartupHold

log = logging.getLogger(__name__)

PACE_STEP_S = 0.05
"""The longest the pacer sleeps before looking again (an interruption ends the wait sooner)."""


class Speaker:
    def __init__(
        self, contexts: ContextTable, outbox: Outbox, playout: PlayoutClock, clock: Clock, *,
        limits: SessionLimits, start_hold_s: float, emit: Callable[[dict[str, Any]], None],
        metrics_wanted: Callable[[], bool], session_id: str,
        metrics: SessionMetrics, alignment_wanted: Callable[[], bool] = lambda: True,
    ) -> None:  # fmt: skip
        self.contexts = contexts
        self.outbox = outbox
        self.playout = playout
        self.clock = clock
        self.limits = limits
        self.start_hold_s = start_hold_s
        self.emit = emit
        self._metrics_wanted = metrics_wanted
        self._alignment_wanted = alignment_wanted
        self.metrics = metrics
        self.session_id = session_id

    async def run(self) -> None:
        """Speak every context in turn until the session closes, then close the outbox."""
        contexts = self.contexts
        while (slot := await contexts.next()) is not None:
            contexts.current = slot
            await self._speak(slot)
            contexts.current = None
            contexts.retire(slot)
        self.outbox.close()  # the writer sends what is queued, then returns

    async def _speak(self, slot: ContextSlot) -> None:
        stream = slot.context.events()
        upcoming: asyncio.Future[Any] | None = None
        hold = StartupHold(self.start_hold_s)
        try:
            while True:
                if upcoming is None:
                    upcoming = asyncio.ensure_future(anext(stream))
                timeout = _earliest(hold.remaining(self.clock.now()), self._abandon_check_s(slot))
                if not await self.clock.wait(upcoming, timeout):
                    if hold.holding() and not hold.remaining(self.clock.now()):
                        hold.release()  # held long enough: start playback with what we have
                        await self._replay_held(slot)
                    elif self._abandoned(slot):
                        self._finish_abandoned(slot)
                    continue
                try:
                    event = upcoming.result()
                except StopAsyncIteration:
                    break
                finally:
                    upcoming = None
                await self._on_event(slot, event, hold)
        finally:
            if upcoming is not None:
                upcoming.cancel()
                with contextlib.suppress(BaseException):
                    await upcoming
            await stream.aclose()
        if not slot.interrupted:
            self.emit(events.context_done(slot.id, _synthesized_ms(slot)))

    # -- a context left open ------------------------------------------------------------------

    def _abandon_check_s(self, slot: ContextSlot) -> float | None:
        """How often to look whether the speaking context was left open (None: it cannot be)."""
        timeout = self.limits.context_timeout_s
        if not timeout or slot.text_done or slot.interrupted:
            return None
        return timeout / CHECKS_PER_TIMEOUT

    def _abandoned(self, slot: ContextSlot) -> bool:
        """Left open: said all its text, none for `context_timeout_s`, and a later context waits."""
        timeout = self.limits.context_timeout_s
        if not timeout or slot.text_done or slot.interrupted or len(self.contexts.open) < 2:
            return False
        quiet = slot.context.quiet_since()
        return quiet is not None and self.clock.now() - quiet >= timeout

    def _finish_abandoned(self, slot: ContextSlot) -> None:
        timeout = self.limits.context_timeout_s
        self.emit(events.error("context_timeout", f"context '{slot.id}' got no text for {timeout:g} s while "
                               "later contexts waited: finished as if text.done had arrived", slot.id))  # fmt: skip
        log.info("context timed out", extra={"session_id": self.session_id, "context_id": slot.id})
        self.contexts.done(slot.id)

    # -- events of the speaking context ---------------------------------------------------------

    async def _on_event(self, slot: ContextSlot, event: object, hold: StartupHold) -> None:
        if slot.interrupted:
            return  # drain: nothing of an interrupted context goes out
        out: np.ndarray | dict[str, Any] | None = None
        if isinstance(event, AudioOut):
            out = float_to_int16(slot.resampler.process(event.samples))
            if slot.sent_samples == 0 and not hold.decided:
                hold.decide(self.clock.now(), saturated=slot.context.others_load() >= 1.0)
                if (until := hold.until) is not None:
                    slot.context.hold_playback(until)
            hold.audio_arrived()
        elif isinstance(event, SegmentStarted):
            hold.segment_started()
            out = events.segment_started(slot.id, event.segment_id, event.text, degraded=event.degraded)
        elif isinstance(event, SegmentDone):
            out = events.segment_done(slot.id, event.segment_id, event.audio_ms)
        elif isinstance(event, WordsOut) and self._alignment_wanted():
            out = events.alignment(slot.id, event.segment_id, event.words)
        elif isinstance(event, ContextError):
            out = events.error(event.code, event.message, slot.id)
        elif isinstance(event, ContextDone):
            hold.release()
        if hold.holding():
            slot.held.append(out)  # in order, audio and events alike: replayed on release
            return
        await self._replay_held(slot)
        if out is not None:
            await self._output(slot, out)
        if isinstance(event, SegmentDone) and self._metrics_wanted():
            self.emit(self._metrics_event(slot))
        if isinstance(event, ContextDone):
            tail = float_to_int16(slot.resampler.flush())
            await self._queue_frames(slot, tail, final=True)
            stats = slot.context.stats
            self.metrics.phrasing(stats.segments, stats.mid_phrase_cuts, stats.pause_stretch_s)

    async def _output(self, slot: ContextSlot, item: np.ndarray | dict[str, Any]) -> None:
        if isinstance(item, dict):
            self.emit(item)
        else:
            await self._queue_frames(slot, item, final=False)

    async def _replay_held(self, slot: ContextSlot) -> None:
        slot.context.release_playback()
        while slot.held and not slot.interrupted:
            await self._output(slot, slot.held.pop(0))

    def _metrics_event(self, slot: ContextSlot) -> dict[str, Any]:
        stats = slot.context.stats
        audio_s = stats.audio_samples / slot.context.sample_rate
        ttfa = None
        if stats.first_job_at is not None and slot.first_sent_at is not None:
            ttfa = (slot.first_sent_at - stats.first_job_at) * 1000.0
        context = slot.context  # its engine now: a fallback after a failover
        return events.metrics(
            slot.id, ttfa_ms=ttfa, rtf=stats.synth_wall_s / audio_s if audio_s else None,
            buffer_ms=self._ahead_s() * 1000.0, chunk=stats.last_chunk_chars, underruns=self.playout.underruns,
            engine=context.engine_name, queue_depth=context.engine.queue_depth, degraded=context.degraded,
        )  # fmt: skip

    # -- frames and pacing ----------------------------------------------------------------------

    async def _queue_frames(self, slot: ContextSlot, pcm: np.ndarray, *, final: bool) -> None:
        """Cut `pcm` into frames and queue them, never more than `lead_ms` ahead of playback."""
        out = slot.output
        slot.pending = np.concatenate([slot.pending, pcm]) if slot.pending.size else pcm
        frame = out.frame_samples
        while slot.pending.size >= frame or (final and slot.pending.size):
            if slot.interrupted:
                return
            await self._pace(slot)
            if slot.interrupted:  # an interruption may land while we wait
                return
            chunk, slot.pending = full_frame(slot.pending[:frame], frame), slot.pending[frame:]
            if await self.outbox.put_audio(AudioFrame(chunk, slot.id, out), dropped=lambda: slot.interrupted):
                slot.queued_samples += chunk.size

    async def _pace(self, slot: ContextSlot) -> None:
        """Wait until `slot`'s next frame may go, or it is interrupted (the speaker moves on at once)."""
        while not slot.interrupted:
            wait = slot.pacer.wait_s(self._ahead_s())
            if wait <= 0:
                return
            await self.clock.sleep(min(wait, PACE_STEP_S))

    def _ahead_s(self) -> float:
        """Audio the listener has yet to hear: sent and unplayed, or queued to send."""
        return self.playout.lead_s(self.clock.now()) + self.outbox.pending_audio_s


def _synthesized_ms(slot: ContextSlot) -> float:
    return slot.context.stats.audio_samples * 1000.0 / slot.context.sample_rate


def _earliest(*delays: float | None) -> float | None:
    known = [d for d in delays if d is not None]
    return min(known) if known else None
