"""Streaming compressed-audio encoder built on PyAV (FFmpeg).

One encoder per response: it muxes into an in-memory, non-seekable sink and
every ``encode()`` drains whatever the muxer has written, so clients can start
playback long before synthesis ends. Design points:

* The sink deliberately has no ``seek``: muxers that would otherwise seek back
  to patch headers on close (MP3 Xing, FLAC STREAMINFO) skip that, because
  those bytes have already been sent.
* ``flush_packets=1`` makes FFmpeg push every muxed packet to the sink instead
  of accumulating its 32 KiB I/O buffer; for Ogg a short ``page_duration``
  makes it close a page per Opus packet instead of per second of audio.
* Codecs with a fixed frame size (AAC 1024, MP3 576/1152, Opus 20 ms, FLAC
  block) are fed exact frames from our own buffer; the remainder is sent as a
  short last frame on ``finish()`` (zero padded if the codec cannot take one).
* The container header is held back until the first audio bytes follow it,
  so every non-empty prefix of the output decodes to actual audio.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np

from realtime.audio.pcm import as_int16_mono, float_to_int16, int16_to_float
from realtime.audio.resample import StreamResampler

log = logging.getLogger(__name__)

# libavcodec AV_CODEC_CAP_* bits (stable ABI values).
_CAP_SMALL_LAST_FRAME = 1 << 6
_CAP_VARIABLE_FRAME_SIZE = 1 << 16

# Sample formats we know how to produce, best first (s16 keeps FLAC lossless).
_SAMPLE_FORMATS: dict[str, type[np.generic]] = {
    "s16": np.int16,
    "s16p": np.int16,
    "flt": np.float32,
    "fltp": np.float32,
}


@dataclass(frozen=True)
class AvCodecSpec:
    """How one public format maps onto an FFmpeg codec and muxer."""

    codec: str
    container: str
    default_bitrate: int | None = None
    fallback_rate: int | None = None  # used when the codec rejects the input rate
    container_options: dict[str, str] = field(default_factory=dict)


class _ByteSink:
    """Write-only, non-seekable file object that PyAV muxes into."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def write(self, data: bytes) -> int:
        self._buf += data
        return len(data)

    def __len__(self) -> int:
        return len(self._buf)

    def take(self) -> bytes:
        out = bytes(self._buf)
        self._buf.clear()
        return out


def pick_codec_rate(codec: av.Codec, rate: int, fallback: int | None = None) -> int:
    """Return ``rate`` if the codec accepts it, else the rate to resample to."""
    supported = sorted(codec.audio_rates or ())
    if not supported or rate in supported:
        return rate
    if fallback in supported:
        return fallback
    higher = [r for r in supported if r >= rate]
    return higher[0] if higher else supported[-1]


def _pick_sample_format(codec: av.Codec) -> str:
    available = {f.name for f in codec.audio_formats or ()}
    for name in _SAMPLE_FORMATS:
        if name in available:
            return name
    raise ValueError(f"codec {codec.name} supports none of {list(_SAMPLE_FORMATS)}")


class AvStreamEncoder:
    """Incremental PyAV encoder for mp3 / aac (ADTS) / flac / opus (Ogg)."""

    def __init__(
        self,
        fmt: str,
        content_type: str,
        spec: AvCodecSpec,
        sample_rate: int,
        bitrate: int | None = None,
    ) -> None:
        self.format = fmt
        self.content_type = content_type
        self.sample_rate = sample_rate
        codec = av.Codec(spec.codec, "w")
        self.codec_rate = pick_codec_rate(codec, sample_rate, spec.fallback_rate)
        self._resampler = (
            StreamResampler(sample_rate, self.codec_rate) if self.codec_rate != sample_rate else None
        )
        self._sample_fmt = _pick_sample_format(codec)
        self._dtype = _SAMPLE_FORMATS[self._sample_fmt]
        caps = int(codec.capabilities)
        self._small_last_frame = bool(caps & (_CAP_SMALL_LAST_FRAME | _CAP_VARIABLE_FRAME_SIZE))

        self._sink = _ByteSink()
        options = {"flush_packets": "1", **spec.container_options}
        self._container = av.open(self._sink, mode="w", format=spec.container, container_options=options)
        self._stream = self._container.add_stream(spec.codec, rate=self.codec_rate)
        ctx = self._stream.codec_context
        ctx.layout = "mono"
        ctx.format = self._sample_fmt
        if spec.default_bitrate is not None:  # lossy codec; lossless ignores bitrate
            ctx.bit_rate = bitrate or spec.default_bitrate
        self._container.start_encoding()  # opens the codec, writes the header
        self.frame_size: int = 0 if caps & _CAP_VARIABLE_FRAME_SIZE else ctx.frame_size
        self._header_len = len(self._sink)
        self._audio_started = False
        self._time_base = Fraction(1, self.codec_rate)
        self._pts = 0
        self._pending = np.zeros(0, dtype=self._dtype)
        self._finished = False
        log.debug(
            "%s encoder: %d Hz in, %d Hz codec, %s, frame %d",
            fmt,
            sample_rate,
            self.codec_rate,
            self._sample_fmt,
            self.frame_size,
        )

    def encode(self, pcm: np.ndarray) -> bytes:
        """Buffer mono int16 samples, encode whole frames, return ready bytes."""
        if self._finished:
            raise RuntimeError("encoder used after finish()")
        samples = as_int16_mono(pcm)
        if samples.size:
            self._push(self._convert(samples))
        return self._drain()

    def finish(self) -> bytes:
        """Encode the tail, flush the codec delay and write the container trailer."""
        if self._finished:
            return b""
        self._finished = True
        if self._resampler is not None:
            self._push(self._to_codec_dtype(self._resampler.flush()))
        if self._pts == 0 and self._pending.size == 0:
            # No audio at all: a header-only MP3/ADTS/Ogg body does not decode,
            # so emit 20 ms of silence to keep the response playable.
            self._pending = np.zeros(self.codec_rate // 50, self._dtype)
        tail = self._pending
        self._pending = tail[:0]
        if tail.size:
            if not self._small_last_frame and tail.size < self.frame_size:
                tail = np.concatenate([tail, np.zeros(self.frame_size - tail.size, self._dtype)])
            self._send(tail)
        self._container.mux(self._stream.encode(None))
        self._container.close()
        return self._sink.take()

    def _convert(self, samples: np.ndarray) -> np.ndarray:
        if self._resampler is not None:
            return self._to_codec_dtype(self._resampler.process(int16_to_float(samples)))
        if self._dtype is np.int16:
            return samples
        return int16_to_float(samples)

    def _to_codec_dtype(self, x: np.ndarray) -> np.ndarray:
        return float_to_int16(x) if self._dtype is np.int16 else x.astype(np.float32)

    def _push(self, samples: np.ndarray) -> None:
        if self.frame_size == 0:
            if samples.size:
                self._send(samples)
            return
        buf = np.concatenate([self._pending, samples]) if self._pending.size else samples
        n_full = buf.size // self.frame_size * self.frame_size
        for start in range(0, n_full, self.frame_size):
            self._send(buf[start : start + self.frame_size])
        self._pending = buf[n_full:].copy()

    def _send(self, chunk: np.ndarray) -> None:
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(chunk).reshape(1, -1), format=self._sample_fmt, layout="mono"
        )
        frame.sample_rate = self.codec_rate
        frame.time_base = self._time_base
        frame.pts = self._pts
        self._pts += chunk.size
        self._container.mux(self._stream.encode(frame))

    def _drain(self) -> bytes:
        if not self._audio_started:
            if len(self._sink) <= self._header_len:
                return b""
            self._audio_started = True
        return self._sink.take()
