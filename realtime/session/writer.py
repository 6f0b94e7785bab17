"""The writer: the outbox's frames and events to the transport, in order, and what was sent.

One task per session. It encodes each frame at send time (purged frames never
reach the encoder, so a container's state matches what the client received; each
context is one complete container stream, whose tail goes out before the event
that ends it), offers every event to the observers (never awaited: a slow control
socket must not delay the audio), and keeps the accounting the rest of the session
reads: the playout clock (what was really handed to the transport), each
context's sent samples, underruns, time to first audio and when it last sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ..audio.encoders import StreamEncoder, create_encoder
from .clock import Clock
from .config import OutputConfig
from .contexts import ContextTable
from .deps import SessionMetrics
from .observers import Observer
from .outbox import AudioFrame, Outbox
from .playout import PlayoutClock

SendAudio = Callable[[bytes, str], Awaitable[None]]
SendEvent = Callable[[dict[str, Any]], Awaitable[None]]

_ENDS_STREAM = ("context.done", "speech.interrupted")


class Writer:
    def __init__(
        self, outbox: Outbox, contexts: ContextTable, playout: PlayoutClock, clock: Clock, *,
        metrics: SessionMetrics, observers: list[Observer],
    ) -> None:  # fmt: skip
        self.outbox = outbox
        self.contexts = contexts
        self.playout = playout
        self.clock = clock
        self.metrics = metrics
        self.observers = observers
        self.last_sent_at = clock.now()
        """When the writer last handed audio to the transport (idle detection)."""

    async def run(self, send_audio: SendAudio, send_event: SendEvent) -> None:
        """Send what the outbox holds, in order, until it is closed and empty."""
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
                self._account(item)
                self.last_sent_at = self.clock.now()
                data = encoder.encode(item.pcm)
                if data:
                    await send_audio(data, item.context_id)
            else:
                if (
                    item.get("type") in _ENDS_STREAM
                    and encoder is not None
                    and item.get("context_id") == encoder_context
                ):
                    # Each context is a complete container stream: its tail must arrive before the event.
                    if tail := encoder.finish():
                        await send_audio(tail, item["context_id"])
                    encoder = encoder_output = None
                for observer in self.observers:
                    observer.offer(item)  # never awaited: a slow observer must not delay the audio
                await send_event(item)  # (offered first: a send that stalls for good still reaches them)
        if encoder is not None and (tail := encoder.finish()):
            await send_audio(tail, "")

    def _account(self, frame: AudioFrame) -> None:
        now = self.clock.now()
        slot = self.contexts.find(frame.context_id)
        if slot is not None:
            if slot.playout_offset_s is None:
                slot.playout_offset_s = self.playout.sent_s
                slot.first_sent_at = now
                first_cut = slot.context.stats.first_job_at
                if first_cut is not None:
                    self.metrics.first_audio(slot.context.engine.info.name, now - first_cut)
            slot.sent_samples += frame.pcm.size
        before = self.playout.underruns
        self.playout.on_send(now, frame.duration_s)
        if self.playout.underruns > before:
            self.metrics.underrun()
        self.metrics.audio_sent(frame.duration_s)
