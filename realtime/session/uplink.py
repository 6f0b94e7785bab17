"""Uplink audio (the listener's microphone) → voice activity events, within a budget.

The VAD runs on the event loop, so a client sending audio far faster than real
time would take the loop from every other session: audio past the `UplinkBudget`
is dropped, with at most one `input_audio_too_fast` error a second. Speech
starting is reported to the session at once (`on_speech`), in order with the
`vad.*` events, which decides whether it is a barge-in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import server_events as events
from .clock import Clock
from .config import BargeInConfig, InputAudioConfig
from .errors import ClientError
from .uplink_budget import UplinkBudget
from .vad import UplinkAudio, VadConfig, VoiceActivityDetector

REFUSAL_EVERY_S = 1.0


class Uplink:
    def __init__(
        self, clock: Clock, *, emit: Callable[[dict[str, Any]], None], on_speech: Callable[[], None]
    ) -> None:
        self.clock = clock
        self.emit = emit
        self.on_speech = on_speech
        self.audio: UplinkAudio | None = None
        self.vad: VoiceActivityDetector | None = None
        self.budget = UplinkBudget(clock.now())
        self._refused_at: float | None = None

    def configure(self, audio: InputAudioConfig | None, barge_in: BargeInConfig) -> None:
        """(Re)start the VAD for this input format: `audio_ms` of later events counts from here."""
        if audio is None:
            self.audio = self.vad = None
            return
        self.audio = UplinkAudio(audio.encoding, audio.sample_rate)
        vad = VadConfig(aggressiveness=barge_in.aggressiveness, min_speech_ms=barge_in.min_speech_ms)
        self.vad = VoiceActivityDetector(vad, self.audio.vad_rate)

    def feed(self, data: bytes) -> None:
        if self.audio is None or self.vad is None:
            raise ClientError("no_input_audio", "binary frames need input_audio set with session.update")
        now = self.clock.now()
        budget = self.budget
        if not budget.take(now, self.audio.duration_s(len(data))):
            self.audio.skip(len(data))
            if self._refused_at is None or now - self._refused_at >= REFUSAL_EVERY_S:
                self._refused_at = now
                self.emit(events.error("input_audio_too_fast",
                                       f"uplink audio faster than {budget.rate:g}x real time (bursts up to "
                                       f"{budget.burst_s:g} s) is dropped; {budget.dropped_s:.1f} s dropped so far"))  # fmt: skip
            return
        for event in self.vad.feed(self.audio.decode(data)):
            self.emit(events.vad(event.kind, event.audio_ms))
            if event.kind == "speech_started":
                self.on_speech()
