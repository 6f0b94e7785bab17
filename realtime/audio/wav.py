"""Streaming WAV (RIFF/WAVE, PCM s16le mono) encoder.

A streamed response cannot know its final length when the header goes out, and
the output is not seekable, so the header can never be patched. We therefore
write both the RIFF chunk size and the ``data`` chunk size as ``0xFFFFFFFF``,
the common "unknown length, read until EOF" convention for streamed WAV.
FFmpeg/PyAV decode every sample up to wherever the stream is cut (logging a
harmless "Ignoring maximum wav data size" warning), and readers that trust the
sizes, such as Python's ``wave`` or browsers, simply hit EOF early. The
alternative convention, sizes of 0, also works in FFmpeg but makes Python's
``wave`` reject the file outright.
"""

from __future__ import annotations

import struct

import numpy as np

from realtime.audio.pcm import as_int16_mono

UNKNOWN_SIZE = 0xFFFFFFFF
WAV_HEADER_SIZE = 44


def wav_header(sample_rate: int, channels: int = 1, bits: int = 16) -> bytes:
    """44-byte canonical PCM WAV header with "unknown" (0xFFFFFFFF) sizes."""
    block_align = channels * bits // 8
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        UNKNOWN_SIZE,
        b"WAVE",
        b"fmt ",
        16,
        1,  # WAVE_FORMAT_PCM
        channels,
        sample_rate,
        sample_rate * block_align,
        block_align,
        bits,
        b"data",
        UNKNOWN_SIZE,
    )


class WavEncoder:
    """Emits the header with the first samples, then raw s16le samples."""

    format = "wav"

    def __init__(self, sample_rate: int, content_type: str = "audio/wav") -> None:
        self.content_type = content_type
        self.sample_rate = sample_rate
        self._header_sent = False
        self._finished = False

    def _header_once(self) -> bytes:
        if self._header_sent:
            return b""
        self._header_sent = True
        return wav_header(self.sample_rate)

    def encode(self, pcm: np.ndarray) -> bytes:
        """Header (first time only, and only once there are samples) + samples."""
        if self._finished:
            raise RuntimeError("encoder used after finish()")
        samples = as_int16_mono(pcm)
        if samples.size == 0:
            return b""
        return self._header_once() + samples.astype("<i2", copy=False).tobytes()

    def finish(self) -> bytes:
        """With no audio at all, still return a header: a valid, empty WAV file."""
        if self._finished:
            return b""
        self._finished = True
        return self._header_once()
