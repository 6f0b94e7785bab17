"""Voice activity detection on the uplink, for barge-in.

I/O-free: bytes or int16 samples in, ``speech_started`` / ``speech_stopped``
events out, stamped with their position in the uplink stream (ms of audio fed
since the start), so callers can both cut playback and measure latency.

Frames of ``frame_ms`` are classified by WebRTC's GMM VAD. Its per-frame
verdicts are noisy (weak onsets, unvoiced consonants, clicks), so they are
smoothed:

* **Start**: a sliding window of the last ``W`` frames, ``N = ceil(min_speech_ms /
  frame_ms)`` and ``W = ceil(N / 0.8)``. Speech starts on the first frame where
  the window holds at least ``N`` voiced frames, i.e. ``min_speech_ms`` of
  voicing at >= 80 % density. Continuous speech is therefore detected exactly
  ``N`` frames after its onset, a gap of up to ``W - N`` frames is tolerated,
  and a burst shorter than ``min_speech_ms`` can never trigger. The event is
  stamped at the first voiced frame in the window, not at detection time.
* **Stop**: after a start, ``ceil(min_silence_ms / frame_ms)`` consecutive
  unvoiced frames; stamped at the end of the last voiced frame.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np
import webrtcvad

from ..audio.g711 import alaw_decode, mulaw_decode
from ..audio.pcm import as_int16_mono, float_to_int16, int16_to_float
from ..audio.resample import StreamResampler

VAD_RATES = (8000, 16000, 32000, 48000)
"""Rates webrtcvad accepts; other uplink rates are resampled to 16 kHz."""
INPUT_ENCODINGS = ("pcm", "mulaw", "alaw")
"""Uplink encodings; ``pcm`` is signed 16-bit little-endian."""

_FRAME_MS = (10, 20, 30)
_START_DENSITY = 0.8
_FALLBACK_RATE = 16000
_MIN_RATE, _MAX_RATE = 8000, 48000


@dataclass(frozen=True)
class VadConfig:
    aggressiveness: int = 2
    """webrtcvad mode, 0 (lenient) .. 3 (strict about what is speech)."""
    frame_ms: int = 20
    """Analysis frame: 10, 20 or 30 ms."""
    min_speech_ms: int = 150
    """Voicing needed (short gaps allowed) before speech_started."""
    min_silence_ms: int = 400
    """Silence after speech before speech_stopped."""

    def __post_init__(self) -> None:
        if not _is_int(self.aggressiveness) or not 0 <= self.aggressiveness <= 3:
            raise ValueError(f"VAD aggressiveness must be an integer 0..3, got {self.aggressiveness!r}")
        if self.frame_ms not in _FRAME_MS or not _is_int(self.frame_ms):
            raise ValueError(f"VAD frame_ms must be 10, 20 or 30, got {self.frame_ms!r}")
        for name in ("min_speech_ms", "min_silence_ms"):
            value = getattr(self, name)
            if not _is_int(value) or value <= 0:
                raise ValueError(f"VAD {name} must be a positive integer (ms), got {value!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class VadEvent:
    kind: Literal["speech_started", "speech_stopped"]
    audio_ms: float
    """Uplink position (ms of audio fed since start) where speech began / ended."""


class UplinkAudio:
    """Decodes uplink bytes in a declared encoding/rate into int16 mono at a VAD rate.

    Chunks may split anywhere: an odd trailing pcm byte waits for the next
    chunk. Rates webrtcvad supports pass through untouched (no added delay);
    others (e.g. 24 kHz, the gateway's own output looped back) go to 16 kHz.
    """

    def __init__(self, encoding: str, sample_rate: int) -> None:
        if encoding not in INPUT_ENCODINGS:
            raise ValueError(f"unknown uplink encoding {encoding!r}; expected one of {INPUT_ENCODINGS}")
        if not _is_int(sample_rate) or not _MIN_RATE <= sample_rate <= _MAX_RATE:
            raise ValueError(f"uplink sample_rate must be {_MIN_RATE}..{_MAX_RATE} Hz, got {sample_rate!r}")
        self.encoding = encoding
        self.sample_rate = sample_rate
        self.vad_rate: int = sample_rate if sample_rate in VAD_RATES else _FALLBACK_RATE
        # Quick (cubic) quality: the higher ones hold back 15-70 ms of audio, which would
        # delay barge-in, and webrtcvad only looks below 4 kHz anyway.
        self._resampler = (
            StreamResampler(sample_rate, self.vad_rate, quality="QQ")
            if self.vad_rate != sample_rate
            else None
        )
        self._carry = b""
        self._skip = 0

    def duration_s(self, nbytes: int) -> float:
        """Audio carried by `nbytes` of this encoding."""
        return nbytes / (2 if self.encoding == "pcm" else 1) / self.sample_rate

    def skip(self, nbytes: int) -> None:
        """Account for `nbytes` of the stream dropped unread, so pcm samples stay aligned after them."""
        if self.encoding != "pcm" or nbytes <= 0:
            return
        if self._carry or self._skip:  # the first dropped byte ends a sample begun (or skipped) before
            self._carry, self._skip = b"", 0
            nbytes -= 1
        self._skip = nbytes % 2  # an odd rest: the next chunk opens with the end of a dropped sample

    def decode(self, data: bytes) -> np.ndarray:
        """Samples of ``data`` as int16 at :attr:`vad_rate` (may be empty)."""
        if self.encoding == "mulaw":
            pcm = mulaw_decode(data)
        elif self.encoding == "alaw":
            pcm = alaw_decode(data)
        else:
            if self._skip and data:
                data, self._skip = data[1:], 0
            data = self._carry + bytes(data)
            usable = len(data) & ~1
            self._carry = data[usable:]
            pcm = np.frombuffer(data[:usable], dtype="<i2").astype(np.int16)
        if self._resampler is None:
            return pcm
        return float_to_int16(self._resampler.process(int16_to_float(pcm)))


class VoiceActivityDetector:
    """Turns int16 mono audio into speech start/stop events (rules in the module doc)."""

    def __init__(self, config: VadConfig, sample_rate: int) -> None:
        if sample_rate not in VAD_RATES:
            raise ValueError(f"VAD sample_rate must be one of {VAD_RATES}, got {sample_rate!r}")
        self.config = config
        self.sample_rate = sample_rate
        self._frame_bytes = sample_rate * config.frame_ms // 1000 * 2
        self._start_frames = math.ceil(config.min_speech_ms / config.frame_ms)
        self._window_frames = math.ceil(self._start_frames / _START_DENSITY)
        self._stop_frames = math.ceil(config.min_silence_ms / config.frame_ms)
        self.reset()

    def reset(self) -> None:
        """Forget everything, including webrtcvad's internal adaptation and the position."""
        self._vad = webrtcvad.Vad(self.config.aggressiveness)
        self._pending = b""
        self._samples = 0
        self._frames = 0
        self._window: deque[bool] = deque(maxlen=self._window_frames)
        self._window_voiced = 0
        self._speaking = False
        self._last_voiced = -1
        self._silent_run = 0

    @property
    def speaking(self) -> bool:
        """True between a speech_started and its speech_stopped."""
        return self._speaking

    @property
    def position_ms(self) -> float:
        """Audio fed so far, in ms (including a buffered partial frame)."""
        return self._samples * 1000.0 / self.sample_rate

    def feed(self, pcm: np.ndarray) -> list[VadEvent]:
        """Consume int16 mono samples of any length; return events completed by them."""
        samples = as_int16_mono(pcm)
        self._samples += samples.size
        data = self._pending + samples.astype("<i2", copy=False).tobytes()
        size = self._frame_bytes
        usable = len(data) - len(data) % size
        self._pending = data[usable:]
        events: list[VadEvent] = []
        is_speech, rate = self._vad.is_speech, self.sample_rate
        for offset in range(0, usable, size):
            event = self._step(is_speech(data[offset : offset + size], rate))
            if event is not None:
                events.append(event)
        return events

    def _step(self, voiced: bool) -> VadEvent | None:
        index = self._frames
        self._frames += 1
        if voiced:
            self._last_voiced = index
        if self._speaking:
            self._silent_run = 0 if voiced else self._silent_run + 1
            if self._silent_run < self._stop_frames:
                return None
            self._speaking = False
            self._window.clear()
            self._window_voiced = 0
            return VadEvent("speech_stopped", self._frame_ms(self._last_voiced + 1))
        window = self._window
        if len(window) == window.maxlen and window[0]:
            self._window_voiced -= 1
        window.append(voiced)
        self._window_voiced += voiced
        if self._window_voiced < self._start_frames:
            return None
        self._speaking = True
        self._silent_run = 0
        first = index - len(window) + 1 + list(window).index(True)
        return VadEvent("speech_started", self._frame_ms(first))

    def _frame_ms(self, frame_index: int) -> float:
        return float(frame_index * self.config.frame_ms)
