"""A long-lived realtime session: ordered contexts, paced audio, barge-in.

Transports (native WebSocket, telephony, WebRTC) feed it commands and uplink
audio and run its `run()` coroutine with a `send` callable. Inside:

- contexts (`SpeechContext`) speak one at a time, in the order they were opened;
- the *speaker* task turns a context's audio into `frame_ms` frames and queues
  them in the `Outbox`, never more than `lead_ms` ahead of real-time playback;
- the *writer* task encodes and sends frames and events in order, and keeps the
  playout clock (what was really handed to the transport);
- `interrupt()` (barge-in or `context.cancel`) cancels synthesis, purges the
  context's unsent frames, sends at most 10 ms of them faded out, then
  `speech.interrupted` — after which no audio of that context can be sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..audio.encoders import StreamEncoder, create_encoder
from ..audio.fade import fade_out
from ..audio.pcm import float_to_int16
from ..audio.resample import StreamResampler
from ..control.voices import Selection, UnknownModel, UnknownVoice
from . import server_events as events
from .clock import Clock, MonotonicClock
from .config import ConfigError, OutputConfig, SessionConfig, apply_update
from .context import SpeechContext
from .errors import ClientError
from .events import AudioOut, ContextDone, ContextError, SegmentDone, SegmentStarted
from .observers import Observer
from .outbox import AudioFrame, Outbox, OutboxOverflow
from .playout import BurstPacer, PlayoutClock
from .send_watch import CHECKS_PER_TIMEOUT, SendWatch
from .startup_hold import StartupHold
from .uplink_budget import UplinkBudget
from .vad import UplinkAudio, VadConfig, VoiceActivityDetector

if TYPE_CHECKING:
    from ..gateway import Gateway

log = logging.getLogger(__name__)

SendAudio = Callable[[bytes, str], Awaitable[None]]
SendEvent = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class _Slot:
    id: str
    context: SpeechContext
    output: OutputConfig
    resampler: StreamResampler
    pacer: BurstPacer
    pending: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16))
    sent_samples: int = 0
    queued_samples: int = 0
    playout_offset_s: float | None = None
    played_ms_reported: float | None = None
    interrupted: bool = False
    text_done: bool = False
    first_sent_at: float | None = None
    held: list[Any] = field(default_factory=list)
    """Audio and events held back by a `StartupHold`, in order."""

    def sent_ms(self) -> float:
        return self.sent_samples * 1000.0 / self.output.sample_rate


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


class RealtimeSession:
    def __init__(
        self,
        gateway: Gateway,
        *,
        session_id: str,
        config: SessionConfig,
        transport: str,
        limits: SessionLimits | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.gateway = gateway
        self.id = session_id
        self.transport = transport
        self.limits = limits or SessionLimits()
        self.clock = clock or MonotonicClock()
        self.config = config
        self._selection = self._resolve(config)
        self.outbox = Outbox(max_events=self.limits.max_queued_events)
        self._overflowed = asyncio.Event()
        """Set when the client has left `max_queued_events` unread: `run` ends with OutboxOverflow."""
        self.playout = PlayoutClock()
        # Per frame: labelled children looked up once (`labels()` takes a lock and builds a key).
        self._audio_counter = gateway.metrics.audio_seconds.labels(transport)
        self._underrun_counter = gateway.metrics.underruns.labels(transport)
        self._slots: OrderedDict[str, _Slot] = OrderedDict()
        self._draining: OrderedDict[str, _Slot] = OrderedDict()
        """Contexts whose audio is all queued but not yet played out: still interruptible. Without this
        a barge-in in an answer's last `lead_ms`, or anywhere in one sent faster than real time
        (`lead_ms` null), would leave the client playing audio it should drop."""
        self._finished: deque[str] = deque(maxlen=256)
        self._implicit: str | None = None
        self._current: _Slot | None = None
        """The context the speaker is in: the only one whose cancellation it must see through."""
        self._ids = itertools.count(1)
        self._slot_added = asyncio.Event()
        self._closing = False
        self.closed = asyncio.Event()
        self._observers: list[Observer] = []
        self._uplink: UplinkAudio | None = None
        self._vad: VoiceActivityDetector | None = None
        self._uplink_budget = UplinkBudget(self.clock.now())
        self._uplink_refused_at: float | None = None
        self._configure_vad()
        self.last_sent_at = self.clock.now()
        """When the writer last handed something to the transport (idle detection)."""
        self.interruptions: deque[dict[str, Any]] = deque(maxlen=64)
        """The latest `speech.interrupted` events (bounded: a client may cancel forever)."""
        self.interruption_count = 0
        self.text_source: str | None = None
        """Who sends this session's text: its own socket, or one attached control source."""
        self.api_key: str | None = None

    # -- configuration ----------------------------------------------------------------------

    def _resolve(self, config: SessionConfig) -> Selection:
        try:
            return self.gateway.voices.resolve(config.engine, config.voice)
        except UnknownModel as exc:
            raise ConfigError("engine", str(exc)) from None
        except UnknownVoice as exc:
            raise ConfigError("voice", str(exc)) from None

    def _configure_vad(self) -> None:
        audio = self.config.input_audio
        if audio is None:
            self._uplink = self._vad = None
            return
        self._uplink = UplinkAudio(audio.encoding, audio.sample_rate)
        vad = VadConfig(aggressiveness=self.config.barge_in.aggressiveness,
                        min_speech_ms=self.config.barge_in.min_speech_ms)  # fmt: skip
        self._vad = VoiceActivityDetector(vad, self._uplink.vad_rate)

    def describe(self) -> dict[str, Any]:
        info = self.config.describe()
        info["engine"] = self._selection.engine.info.name
        info["voice"] = self._selection.voice
        return {"session_id": self.id, **info, "limits": self.limits.describe()}

    def update(self, patch: dict[str, Any]) -> None:
        """Apply `session.update`; engine, voice, speed and output apply to contexts opened later."""
        new = apply_update(self.config, patch)
        selection = self._resolve(new)
        input_changed = new.input_audio != self.config.input_audio or new.barge_in != self.config.barge_in
        self.config, self._selection = new, selection
        if input_changed:
            self._configure_vad()
        self.emit(events.session_updated(self.describe()))

    # -- events out ---------------------------------------------------------------------------

    def add_observer(self, observer: Observer) -> None:
        """Another socket (a control WebSocket) that receives every event but no audio."""
        self._observers.append(observer)

    def remove_observer(self, observer: Observer) -> None:
        with contextlib.suppress(ValueError):
            self._observers.remove(observer)

    def _offer_unsent_events(self) -> None:
        """Hand observers the events the client will not get now (the session is ending under them):
        the agent watching a call learns how it ended even if the caller's socket stalled. Only what
        fits in each observer's queue (the latest ones): the handoff must not make it fail."""
        unsent = self.outbox.events()
        for observer in self._observers:
            room = observer.max_pending - len(observer)
            for event in unsent[-room:] if room > 0 else []:
                observer.offer(event)

    def emit(self, event: dict[str, Any]) -> None:
        """Queue an event; never raises, so any caller (a control socket, a REST call, a microphone
        reader) may emit. A client that has left `max_queued_events` unread ends the session instead."""
        try:
            self.outbox.put_event(event)
        except OutboxOverflow:
            self._overflowed.set()

    # -- text in ------------------------------------------------------------------------------

    def _open(self, context_id: str | None) -> _Slot:
        if context_id is None:
            context_id = f"ctx-{next(self._ids)}"
            while context_id in self._slots or context_id in self._finished:
                context_id = f"ctx-{next(self._ids)}"
        # A cancelled context leaves at once, except the one speaking, which leaves when the speaker has
        # wound it up; until then it does not count, up to a point: the table stays bounded.
        live = sum(1 for s in self._slots.values() if not s.interrupted)
        if live >= self.limits.max_contexts or len(self._slots) >= 2 * self.limits.max_contexts:
            raise ClientError(
                "too_many_contexts", f"at most {self.limits.max_contexts} contexts may be open", context_id
            )
        engine = self._selection.engine
        if not engine.ready:
            raise ClientError("engine_not_ready", f"engine '{engine.info.name}' is still loading", context_id)
        context = self.gateway.new_context(
            self._selection, speed=self.config.speed, session_id=self.id, context_id=context_id,
            low_latency=self.config.latency == "low",
        )  # fmt: skip
        context.segmenter.max_buffer_chars = self.limits.max_context_chars
        output = self.config.output
        lead_s = None if output.lead_ms is None else output.lead_ms / 1000.0
        slot = _Slot(
            context_id,
            context,
            output,
            StreamResampler(engine.info.sample_rate, output.sample_rate),
            BurstPacer(lead_s, output.frame_samples / output.sample_rate),
        )
        self._slots[context_id] = slot
        self._slot_added.set()
        return slot

    def _slot(self, context_id: str | None, *, create: bool) -> _Slot | None:
        if context_id is None:
            if self._implicit is not None:
                slot = self._slots.get(self._implicit)
                if slot is not None and not slot.text_done and not slot.interrupted:
                    return slot  # after a cancel, text without a context_id starts a new context
            if not create:
                return None
            slot = self._open(None)
            self._implicit = slot.id
            return slot
        slot = self._slots.get(context_id)
        if slot is None and create:
            if context_id in self._finished:
                raise ClientError(
                    "context_finished", f"context '{context_id}' has already finished", context_id
                )
            slot = self._open(context_id)
        return slot

    @property
    def implicit_context_id(self) -> str | None:
        """The context that text without a `context_id` goes to, if one is open."""
        return self._implicit

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
        elif context_id is not None and context_id not in self._finished:
            raise ClientError("unknown_context", f"no open context '{context_id}'", context_id)

    def done(self, context_id: str | None = None) -> None:
        slot = self._slot(context_id, create=False)
        if slot is None:
            if context_id is not None and context_id not in self._finished:
                raise ClientError("unknown_context", f"no open context '{context_id}'", context_id)
            return
        slot.text_done = True
        slot.context.done()
        if self._implicit == slot.id:
            self._implicit = None

    def playback_position(self, context_id: str | None, played_ms: float) -> None:
        if context_id:
            slot = self._slots.get(context_id) or self._draining.get(context_id)
        else:  # the context the listener hears now: the oldest one not yet played out
            self._prune_draining()
            slot = next(iter(self._draining.values()), None) or next(iter(self._slots.values()), None)
        if slot is not None:
            slot.played_ms_reported = max(slot.played_ms_reported or 0.0, played_ms)

    def close_when_done(self) -> None:
        """`session.close`: finish every open context, then end the session."""
        self._closing = True
        for slot in list(self._slots.values()):
            if not slot.text_done:
                self.done(slot.id)
        self._slot_added.set()

    # -- interruption -----------------------------------------------------------------------

    @property
    def speaking(self) -> bool:
        return any(not self._played_out(s) for s in self._draining.values()) or any(
            not s.interrupted for s in self._slots.values()
        )

    def _played_ms(self, slot: _Slot) -> float:
        if slot.played_ms_reported is not None:
            return min(slot.played_ms_reported, slot.sent_ms())
        return self._estimated_played_ms(slot)

    def _estimated_played_ms(self, slot: _Slot) -> float:
        """What the pacing clock says the listener has heard of `slot`."""
        if slot.playout_offset_s is None:
            return 0.0
        played = (self.playout.played_s(self.clock.now()) - slot.playout_offset_s) * 1000.0
        return max(0.0, min(played, slot.sent_ms()))

    def _played_out(self, slot: _Slot) -> bool:
        """All of `slot` was sent and heard, by the clock (the client's reports may lag or never come)."""
        return slot.sent_samples >= slot.queued_samples and self._estimated_played_ms(slot) >= slot.sent_ms()

    def _prune_draining(self) -> None:
        """Forget the finished contexts the listener has heard to the end."""
        for slot in [s for s in self._draining.values() if self._played_out(s)]:
            del self._draining[slot.id]

    def interrupt(self, reason: str, context_id: str | None = None) -> list[str]:
        """Stop a context (default: every open one) now; returns the ids interrupted."""
        self._prune_draining()
        if context_id is not None:
            slot = self._slots.get(context_id) or self._draining.get(context_id)
            if slot is None:
                if context_id in self._finished:
                    return []  # played out already: nothing left to stop
                raise ClientError("unknown_context", f"no open context '{context_id}'", context_id)
            targets = [slot] if not slot.interrupted else []
        else:
            targets = [*self._draining.values(), *(s for s in self._slots.values() if not s.interrupted)]
        for slot in targets:
            self._interrupt_slot(slot, reason)
            self._draining.pop(slot.id, None)
            if slot is not self._current and self._slots.pop(slot.id, None) is not None:
                self._finished.append(slot.id)  # never started speaking: nothing for the speaker to reap
        return [s.id for s in targets]

    def _interrupt_slot(self, slot: _Slot, reason: str) -> None:
        if slot.interrupted:
            return
        slot.interrupted = True
        slot.context.cancel()
        dropped = self.outbox.purge(slot.id)
        # Fade out the audio that was about to play, so the cut does not click.
        upcoming = np.concatenate([f.pcm for f in dropped] + [slot.pending]) if dropped else slot.pending
        slot.pending = np.zeros(0, np.int16)
        slot.held.clear()
        fade = fade_out(upcoming, slot.output.sample_rate) if slot.sent_samples else upcoming[:0]
        if fade.size:
            fade = _full_frame(fade, slot.output.frame_samples)
            # Straight behind the last queued frame; nothing of this context is queued after it.
            self.outbox.put_audio_now(AudioFrame(fade, slot.id, slot.output))
        else:
            fade = np.zeros(0, np.int16)
        event = events.speech_interrupted(
            slot.id, reason, sent_ms=slot.sent_ms() + fade.size * 1000.0 / slot.output.sample_rate,
            played_ms=self._played_ms(slot),
        )  # fmt: skip
        self.interruptions.append(event)
        self.interruption_count += 1
        if slot.sent_samples:  # the listener drops what it has of this context (a queued one had none)
            self.playout.truncate(self.clock.now())
        self.emit(event)
        self.gateway.metrics.interruptions.labels(self.transport, reason).inc()
        log.info("speech interrupted", extra={"session_id": self.id, **event})

    # -- uplink audio -------------------------------------------------------------------------

    def feed_uplink(self, data: bytes) -> None:
        if self._uplink is None or self._vad is None:
            raise ClientError("no_input_audio", "binary frames need input_audio set with session.update")
        now = self.clock.now()
        budget = self._uplink_budget
        if not budget.take(now, self._uplink.duration_s(len(data))):
            self._uplink.skip(len(data))
            if self._uplink_refused_at is None or now - self._uplink_refused_at >= 1.0:  # one error a second
                self._uplink_refused_at = now
                self.emit(events.error("input_audio_too_fast",
                                       f"uplink audio faster than {budget.rate:g}x real time (bursts up to "
                                       f"{budget.burst_s:g} s) is dropped; {budget.dropped_s:.1f} s dropped so far"))  # fmt: skip
            return
        for event in self._vad.feed(self._uplink.decode(data)):
            self.emit(events.vad(event.kind, event.audio_ms))
            if event.kind == "speech_started" and self.config.barge_in.enabled and self.speaking:
                self.interrupt("barge_in")

    # -- running ------------------------------------------------------------------------------

    async def run(
        self, send_audio: SendAudio, send_event: SendEvent, *, send_timeout_s: float = 10.0
    ) -> None:
        """Speak until closed. Raises TimeoutError if the client stops reading for `send_timeout_s`."""
        watch = SendWatch(send_timeout_s, self.clock)
        speaker = asyncio.create_task(self._speaker())
        overflowed = asyncio.create_task(self._overflowed.wait())
        writer = asyncio.create_task(
            watch.run(self._writer(watch.watched(send_audio), watch.watched(send_event)))
        )
        try:
            await asyncio.wait({speaker, writer, overflowed}, return_when=asyncio.FIRST_COMPLETED)
            if overflowed.done():
                raise OutboxOverflow(f"{self.outbox.max_events} events left unread")
            if speaker.done() and speaker.exception() is not None:
                raise speaker.exception()  # type: ignore[misc]  # the writer would wait forever
            await writer  # the speaker closed the outbox: the writer sends what is queued, then ends
        finally:
            for task in (speaker, writer, overflowed):
                task.cancel()
            await asyncio.gather(speaker, writer, overflowed, return_exceptions=True)
            self.shutdown()

    def shutdown(self) -> None:
        if not self.closed.is_set():  # once, before observers learn the session is closed
            self._offer_unsent_events()
        for slot in self._slots.values():
            slot.context.cancel()
        self.outbox.close()
        self.closed.set()

    async def _writer(self, send_audio: SendAudio, send_event: SendEvent) -> None:
        """Sends what the outbox holds, in order; `run` times its sends (`SendWatch`)."""
        encoder: StreamEncoder | None = None
        encoder_output: OutputConfig | None = None
        encoder_context: str | None = None
        while (item := await self.outbox.get()) is not None:
            if isinstance(item, AudioFrame):
                if item.output != encoder_output:
                    if encoder is not None and (tail := encoder.finish()):
                        await send_audio(tail, item.context_id)
                    encoder = create_encoder(item.output.encoding, item.output.sample_rate)
                    encoder_output = item.output
                assert encoder is not None
                encoder_context = item.context_id
                self._account_sent(item)
                self.last_sent_at = self.clock.now()
                data = encoder.encode(item.pcm)
                if data:
                    await send_audio(data, item.context_id)
            else:
                ends_stream = item.get("type") in ("context.done", "speech.interrupted")
                if ends_stream and encoder is not None and item.get("context_id") == encoder_context:
                    # Each context is a complete container stream: its tail must arrive before the event.
                    if tail := encoder.finish():
                        await send_audio(tail, item["context_id"])
                    encoder = encoder_output = None
                for observer in self._observers:
                    observer.offer(item)  # never awaited: a slow observer must not delay the audio
                await send_event(item)  # (offered first: a send that stalls for good still reaches them)
        if encoder is not None and (tail := encoder.finish()):
            await send_audio(tail, "")

    def _account_sent(self, frame: AudioFrame) -> None:
        now = self.clock.now()
        slot = self._slots.get(frame.context_id) or self._draining.get(frame.context_id)
        if slot is not None:
            if slot.playout_offset_s is None:
                slot.playout_offset_s = self.playout.sent_s
                slot.first_sent_at = now
                ttfa = slot.context.stats.first_job_at
                if ttfa is not None:
                    self.gateway.metrics.ttfa.labels(
                        self.transport, self._selection.engine.info.name
                    ).observe(now - ttfa)
            slot.sent_samples += frame.pcm.size
        before = self.playout.underruns
        self.playout.on_send(now, frame.duration_s)
        if self.playout.underruns > before:
            self._underrun_counter.inc()
        self._audio_counter.inc(frame.duration_s)

    async def _next_slot(self) -> _Slot | None:
        while True:
            if self._slots:
                return next(iter(self._slots.values()))
            if self._closing:
                return None
            self._slot_added.clear()
            await self._slot_added.wait()

    async def _speaker(self) -> None:
        while (slot := await self._next_slot()) is not None:
            self._current = slot
            await self._speak(slot)
            self._current = None
            self._slots.pop(slot.id, None)
            self._finished.append(slot.id)
            if not slot.interrupted:
                self._draining[slot.id] = slot
                self._prune_draining()
                while len(self._draining) > self.limits.max_contexts:
                    self._draining.popitem(last=False)
        self.outbox.close()  # the writer sends what is queued, then returns

    async def _speak(self, slot: _Slot) -> None:
        ctx = slot.context
        stream = ctx.events()
        upcoming: asyncio.Future[Any] | None = None
        hold = StartupHold(self.gateway.settings.planner.loaded_start_hold_ms / 1000.0)
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
            self.emit(events.context_done(slot.id, self._queued_ms(slot)))

    def _abandon_check_s(self, slot: _Slot) -> float | None:
        """How often to look whether the speaking context was left open (None: it cannot be)."""
        timeout = self.limits.context_timeout_s
        if not timeout or slot.text_done or slot.interrupted:
            return None
        return timeout / CHECKS_PER_TIMEOUT

    def _abandoned(self, slot: _Slot) -> bool:
        """Left open: said all its text, none for `context_timeout_s`, and a later context waits."""
        timeout = self.limits.context_timeout_s
        if not timeout or slot.text_done or slot.interrupted or len(self._slots) < 2:
            return False
        quiet = slot.context.quiet_since()
        return quiet is not None and self.clock.now() - quiet >= timeout

    def _finish_abandoned(self, slot: _Slot) -> None:
        timeout = self.limits.context_timeout_s
        self.emit(events.error("context_timeout", f"context '{slot.id}' got no text for {timeout:g} s while "
                               "later contexts waited: finished as if text.done had arrived", slot.id))  # fmt: skip
        log.info("context timed out", extra={"session_id": self.id, "context_id": slot.id})
        self.done(slot.id)

    async def _on_event(self, slot: _Slot, event: object, hold: StartupHold) -> None:
        if slot.interrupted:
            return  # drain: nothing of an interrupted context goes out
        out: np.ndarray | dict[str, Any] | None = None
        if isinstance(event, AudioOut):
            out = float_to_int16(slot.resampler.process(event.samples))
            if slot.sent_samples == 0 and not hold.decided:
                hold.decide(self.clock.now(), saturated=self._selection.engine.load >= 1.0)
                if (until := hold.until) is not None:
                    slot.context.hold_playback(until)
            hold.audio_arrived()
        elif isinstance(event, SegmentStarted):
            hold.segment_started()
            out = events.segment_started(slot.id, event.segment_id, event.text)
        elif isinstance(event, SegmentDone):
            out = events.segment_done(slot.id, event.segment_id, event.audio_ms)
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
        if isinstance(event, SegmentDone) and self.config.metrics:
            self.emit(self._metrics_event(slot))
        if isinstance(event, ContextDone):
            tail = float_to_int16(slot.resampler.flush())
            await self._queue_frames(slot, tail, final=True)

    async def _output(self, slot: _Slot, item: np.ndarray | dict[str, Any]) -> None:
        if isinstance(item, dict):
            self.emit(item)
        else:
            await self._queue_frames(slot, item, final=False)

    async def _replay_held(self, slot: _Slot) -> None:
        slot.context.release_playback()
        while slot.held and not slot.interrupted:
            await self._output(slot, slot.held.pop(0))

    def _queued_ms(self, slot: _Slot) -> float:
        return slot.context.stats.audio_samples * 1000.0 / slot.context.sample_rate

    def _metrics_event(self, slot: _Slot) -> dict[str, Any]:
        stats = slot.context.stats
        audio_s = stats.audio_samples / slot.context.sample_rate
        ttfa = None
        if stats.first_job_at is not None and slot.first_sent_at is not None:
            ttfa = (slot.first_sent_at - stats.first_job_at) * 1000.0
        return events.metrics(
            slot.id, ttfa_ms=ttfa, rtf=stats.synth_wall_s / audio_s if audio_s else None,
            buffer_ms=self._ahead_s() * 1000.0, chunk=stats.last_chunk_chars, underruns=self.playout.underruns,
            engine=self._selection.engine.info.name, queue_depth=self._selection.engine.queue_depth,
        )  # fmt: skip

    async def _queue_frames(self, slot: _Slot, pcm: np.ndarray, *, final: bool) -> None:
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
            chunk, slot.pending = _full_frame(slot.pending[:frame], frame), slot.pending[frame:]
            if await self.outbox.put_audio(AudioFrame(chunk, slot.id, out), dropped=lambda: slot.interrupted):
                slot.queued_samples += chunk.size

    async def _pace(self, slot: _Slot) -> None:
        """Wait until `slot`'s next frame may go, or it is interrupted (the speaker moves on at once)."""
        while not slot.interrupted:
            wait = slot.pacer.wait_s(self._ahead_s())
            if wait <= 0:
                return
            await self.clock.sleep(min(wait, 0.05))

    def _ahead_s(self) -> float:
        """Audio the listener has yet to hear: sent and unplayed, or queued to send."""
        return self.playout.lead_s(self.clock.now()) + self.outbox.pending_audio_s


def _earliest(*delays: float | None) -> float | None:
    known = [d for d in delays if d is not None]
    return min(known) if known else None


def _full_frame(pcm: np.ndarray, frame: int) -> np.ndarray:
    """Pad a short last frame with silence: every frame carries exactly `frame_ms` (telephony needs it)."""
    return pcm if pcm.size >= frame else np.concatenate([pcm, np.zeros(frame - pcm.size, np.int16)])


def new_session_id() -> str:
    """Unguessable: the id is the handle the session control API drives a session by."""
    return f"sess_{secrets.token_urlsafe(16)}"
