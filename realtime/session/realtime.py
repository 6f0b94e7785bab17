"""A long-lived realtime session: ordered contexts, paced audio, barge-in.

Transports (native WebSocket, telephony, WebRTC) feed it commands and uplink
audio and run its `run()` coroutine with two send callables; it touches no socket
and knows no transport, so tests drive a whole session with a scripted engine and
a `FakeClock` (tests/unit/test_session_core.py). What the process provides comes
in as `SessionDeps`. The parts, each in its own module:

- `ContextTable` (contexts.py): contexts open on their first text, speak one at a
  time in the order they were opened, and drain until played out; the limits;
- `Speaker` (speaker.py): a context's audio → `frame_ms` frames in the `Outbox`,
  never more than `lead_ms` ahead of real-time playback; the startup hold;
- `Writer` (writer.py): encodes and sends frames and events in order, and keeps
  the playout clock (what was really handed to the transport);
- `Interrupter` (interruption.py): barge-in or `context.cancel` purges a context's
  unsent frames, sends at most 10 ms of them faded out, then `speech.interrupted`,
  after which no audio of that context can be sent;
- `Uplink` (uplink.py): microphone audio → VAD events, within a budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import OrderedDict, deque
from dataclasses import replace
from typing import Any

from ..control.voices import Selection, UnknownModel, UnknownVoice
from ..engines.base import UnsupportedRequest
from ..engines.registry import EngineUnavailable
from . import server_events as events
from .config import ConfigError, SessionConfig, apply_update
from .contexts import ContextSlot, ContextTable
from .deps import SessionDeps
from .errors import ClientError
from .interruption import Interrupter
from .observers import Observer
from .outbox import Outbox, OutboxOverflow
from .playout import PlayoutClock
from .send_watch import SendWatch
from .speaker import Speaker
from .uplink import Uplink
from .vad import VoiceActivityDetector
from .writer import SendAudio, SendEvent, Writer

__all__ = ["RealtimeSession", "SendAudio", "SendEvent", "new_session_id"]


class RealtimeSession:
    def __init__(self, deps: SessionDeps, *, session_id: str, config: SessionConfig, transport: str) -> None:
        self.deps = deps
        self.id = session_id
        self.transport = transport
        """The transport's name, for metrics and the control API."""
        self.limits = deps.limits
        self.clock = deps.clock
        self.config = config
        self._selection = self._resolve(config)
        self.outbox = Outbox(max_events=self.limits.max_queued_events)
        self._overflowed = asyncio.Event()
        """Set when the client has left `max_queued_events` unread: `run` ends with OutboxOverflow."""
        self.playout = PlayoutClock()
        self._observers: list[Observer] = []
        metrics = deps.metrics_for(transport)
        self.contexts = ContextTable(
            self.limits,
            self._open_slot,
            played_out=lambda slot: slot.played_out(self.playout, self.clock.now()),
        )
        self._interrupter = Interrupter(
            self.contexts,
            self.outbox,
            self.playout,
            self.clock,
            emit=self.emit,
            metrics=metrics,
            session_id=self.id,
        )
        self._speaker = Speaker(
            self.contexts, self.outbox, self.playout, self.clock, limits=self.limits,
            start_hold_s=deps.start_hold_s, emit=self.emit, metrics_wanted=lambda: self.config.metrics,
            alignment_wanted=lambda: self.config.alignment,
            session_id=self.id, metrics=metrics,
        )  # fmt: skip
        self._writer = Writer(
            self.outbox, self.contexts, self.playout, self.clock, metrics=metrics, observers=self._observers
        )
        self._uplink = Uplink(self.clock, emit=self.emit, on_speech=self._on_speech)
        self._uplink.configure(config.input_audio, config.barge_in)
        self.closed = asyncio.Event()
        self.text_source: str | None = None
        """Who sends this session's text: its own socket, or one attached control source."""
        self.api_key: str | None = None

    # -- configuration ----------------------------------------------------------------------

    def _resolve(self, config: SessionConfig) -> Selection:
        """The engine and voice `config` names, refused (ConfigError) if the engine cannot serve it."""
        try:
            selection = self.deps.resolve(config.engine, config.voice)
            selection.engine.info.check(selection.voice, config.speed)
        except UnknownModel as exc:
            raise ConfigError("engine", str(exc)) from None
        except UnknownVoice as exc:
            raise ConfigError("voice", str(exc)) from None
        except UnsupportedRequest as exc:
            raise ConfigError(exc.param, str(exc)) from None
        return selection

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
            self._uplink.configure(new.input_audio, new.barge_in)
        self.emit(events.session_updated(self.describe()))

    def _open_slot(self, context_id: str) -> ContextSlot:
        # Resolved again for each context: a new default engine, a reloaded engine or new voices
        # apply to the contexts opened after the change (running ones keep theirs).
        try:
            selection = self._resolve(self.config)
        except ConfigError as exc:
            if exc.field != "voice" or self.config.engine is not None:
                raise ClientError("invalid_config", str(exc), context_id) from None
            # The default engine changed under a voice it lacks: its default voice, not an error.
            selection = self._resolve(replace(self.config, voice=None))
        self._selection = selection
        try:
            context = self.deps.new_context(
                selection, speed=self.config.speed, session_id=self.id, context_id=context_id,
                low_latency=self.config.latency == "low", text_mode=self.config.normalize,
                ssml=self.config.ssml,
            )  # fmt: skip
        except EngineUnavailable as exc:
            raise ClientError("engine_not_ready", str(exc), context_id) from None
        context.segmenter.max_buffer_chars = self.limits.max_context_chars
        return ContextSlot.create(context_id, context, self.config.output)

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

    # -- commands -------------------------------------------------------------------------------

    def append(self, text: str, context_id: str | None = None) -> str:
        return self.contexts.append(text, context_id)

    def flush(self, context_id: str | None = None) -> None:
        self.contexts.flush(context_id)

    def done(self, context_id: str | None = None) -> None:
        self.contexts.done(context_id)

    def playback_position(self, context_id: str | None, played_ms: float) -> None:
        self.contexts.report_played(context_id, played_ms)

    def close_when_done(self) -> None:
        """`session.close`: finish every open context, then end the session."""
        self.contexts.close_when_done()

    def interrupt(self, reason: str, context_id: str | None = None) -> list[str]:
        """Stop a context (default: every open one) now; returns the ids interrupted."""
        return self._interrupter.interrupt(reason, context_id)

    def feed_uplink(self, data: bytes) -> None:
        self._uplink.feed(data)

    def _on_speech(self) -> None:
        if self.config.barge_in.enabled and self.speaking:
            self.interrupt("barge_in")

    # -- state ----------------------------------------------------------------------------------

    @property
    def implicit_context_id(self) -> str | None:
        """The context that text without a `context_id` goes to, if one is open."""
        return self.contexts.implicit

    @property
    def speaking(self) -> bool:
        return self.contexts.speaking

    @property
    def interruptions(self) -> deque[dict[str, Any]]:
        """The latest `speech.interrupted` events (bounded: a client may cancel forever)."""
        return self._interrupter.history

    @property
    def interruption_count(self) -> int:
        return self._interrupter.count

    @property
    def last_sent_at(self) -> float:
        """When the writer last handed audio to the transport (idle detection)."""
        return self._writer.last_sent_at

    @property
    def _slots(self) -> OrderedDict[str, ContextSlot]:  # diagnostics (integration tests read it)
        return self.contexts.open

    @property
    def _vad(self) -> VoiceActivityDetector | None:  # diagnostics (integration tests read it)
        return self._uplink.vad

    # -- running ------------------------------------------------------------------------------

    async def run(
        self, send_audio: SendAudio, send_event: SendEvent, *, send_timeout_s: float = 10.0
    ) -> None:
        """Speak until closed. Raises TimeoutError if the client stops reading for `send_timeout_s`."""
        watch = SendWatch(send_timeout_s, self.clock)
        speaker = asyncio.create_task(self._speaker.run())
        overflowed = asyncio.create_task(self._overflowed.wait())
        writer = asyncio.create_task(
            watch.run(self._writer.run(watch.watched(send_audio), watch.watched(send_event)))
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
        self.contexts.cancel_all()
        self.outbox.close()
        self.closed.set()


def new_session_id() -> str:
    """Unguessable: the id is the handle the session control API drives a session by."""
    return f"sess_{secrets.token_urlsafe(16)}"
