"""Decoding helpers: every test checks audio by really decoding it."""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
import numpy as np

from realtime.audio.g711 import alaw_decode, mulaw_decode

CONTAINERS = {"mp3": "mp3", "opus": "ogg", "aac": "aac", "flac": "flac", "wav": "wav"}


@dataclass
class Decoded:
    samples: np.ndarray  # float32 mono
    sample_rate: int
    channels: int

    @property
    def duration_s(self) -> float:
        return self.samples.size / self.sample_rate

    @property
    def rms(self) -> float:
        return float(np.sqrt(np.mean(self.samples**2))) if self.samples.size else 0.0


def decode(data: bytes, fmt: str, sample_rate: int = 24000) -> Decoded:
    if fmt == "pcm":
        pcm = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
        return Decoded(pcm, sample_rate, 1)
    if fmt in ("mulaw", "alaw"):
        pcm = (mulaw_decode if fmt == "mulaw" else alaw_decode)(data).astype(np.float32) / 32768.0
        return Decoded(pcm, sample_rate, 1)
    with av.open(io.BytesIO(data), format=CONTAINERS[fmt]) as container:
        stream = container.streams.audio[0]
        channels = stream.codec_context.channels
        rate = stream.codec_context.sample_rate
        parts = [
            frame.to_ndarray().astype(np.float32).reshape(channels, -1)[0]
            for frame in container.decode(stream)
        ]
    samples = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    if np.abs(samples).max(initial=0) > 2:  # integer sample formats
        samples = samples / 32768.0
    return Decoded(samples, rate, channels)


def piper_speech(base_url: str, text: str, sample_rate: int = 24000) -> np.ndarray:
    """Real speech (float32 mono at `sample_rate`), synthesized by Piper through the REST API."""
    import httpx

    from realtime.audio.resample import StreamResampler

    response = httpx.post(
        f"{base_url}/v1/audio/speech",
        json={"model": "tts-1", "voice": "alloy", "input": text, "response_format": "pcm"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    speech = np.frombuffer(response.content, "<i2").astype(np.float32) / 32768
    if sample_rate != 24000:
        resampler = StreamResampler(24000, sample_rate)
        speech = np.concatenate([resampler.process(speech), resampler.flush()])
    return speech
