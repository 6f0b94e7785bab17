"""Public entry point for streaming audio encoders: formats, MIME types, factory.

One encoder is created per response/stream; callers feed mono int16 PCM as it
is synthesised and forward whatever bytes come back straight to the client.

Default bitrates (mono speech, overridable with ``bitrate=``): mp3 64 kb/s,
aac 64 kb/s, opus 32 kb/s. These are transparent for 16-24 kHz TTS voices
while staying cheap on the wire.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from realtime.audio.av_encoder import AvCodecSpec, AvStreamEncoder
from realtime.audio.raw import RawEncoder
from realtime.audio.wav import WavEncoder

AUDIO_FORMATS: tuple[str, ...] = ("mp3", "opus", "aac", "flac", "wav", "pcm", "mulaw", "alaw")

CONTENT_TYPES: dict[str, str] = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
    "mulaw": "audio/basic",
    "alaw": "audio/x-alaw-basic",
}

_AV_SPECS: dict[str, AvCodecSpec] = {
    "mp3": AvCodecSpec("libmp3lame", "mp3", default_bitrate=64_000),
    "aac": AvCodecSpec("aac", "adts", default_bitrate=64_000),
    "flac": AvCodecSpec("flac", "flac"),
    # libopus only takes 8/12/16/24/48 kHz; anything else is resampled to 48 kHz.
    # page_duration (µs) closes an Ogg page per 20 ms packet instead of per second.
    "opus": AvCodecSpec(
        "libopus",
        "ogg",
        default_bitrate=32_000,
        fallback_rate=48_000,
        container_options={"page_duration": "20000"},
    ),
}


@runtime_checkable
class StreamEncoder(Protocol):
    """Incremental encoder for one audio stream."""

    format: str
    content_type: str
    sample_rate: int  # rate of the PCM given to encode()

    def encode(self, pcm: np.ndarray) -> bytes:
        """Feed mono int16 samples; return the bytes ready now (may be ``b""``)."""
        ...

    def finish(self) -> bytes:
        """Flush codec and container trailer; the encoder is unusable afterwards."""
        ...


def create_encoder(fmt: str, sample_rate: int, *, bitrate: int | None = None) -> StreamEncoder:
    """Build a fresh encoder for ``fmt``; ``bitrate`` applies to lossy codecs only."""
    if fmt not in CONTENT_TYPES:
        raise ValueError(f"unknown audio format {fmt!r}; expected one of {AUDIO_FORMATS}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    content_type = CONTENT_TYPES[fmt]
    if fmt == "wav":
        return WavEncoder(sample_rate, content_type)
    if fmt in _AV_SPECS:
        return AvStreamEncoder(fmt, content_type, _AV_SPECS[fmt], sample_rate, bitrate)
    return RawEncoder(fmt, content_type, sample_rate)
