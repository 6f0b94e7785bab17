"""Engine audio (float32 at the engine's rate) to the bytes of one client stream.

One `AudioOutput` per response or session: it owns a streaming resampler and
one encoder, so container state (Ogg pages, WAV header, MP3 frames) spans the
whole stream.
"""

from __future__ import annotations

import numpy as np

from .encoders import create_encoder
from .pcm import float_to_int16
from .resample import StreamResampler


class AudioOutput:
    def __init__(self, fmt: str, engine_rate: int, sample_rate: int, *, bitrate: int | None = None) -> None:
        self.encoder = create_encoder(fmt, sample_rate, bitrate=bitrate)
        self.resampler = StreamResampler(engine_rate, sample_rate)
        self.format = fmt
        self.sample_rate = sample_rate
        self.content_type = self.encoder.content_type
        self.samples_out = 0

    def write(self, samples: np.ndarray) -> bytes:
        """Encode engine audio; returns whatever the container has ready (may be empty)."""
        resampled = self.resampler.process(samples)
        self.samples_out += resampled.size
        return self.encoder.encode(float_to_int16(resampled)) if resampled.size else b""

    def finish(self) -> bytes:
        tail = self.resampler.flush()
        self.samples_out += tail.size
        head = self.encoder.encode(float_to_int16(tail)) if tail.size else b""
        return head + self.encoder.finish()

    @property
    def duration_s(self) -> float:
        return self.samples_out / self.sample_rate
