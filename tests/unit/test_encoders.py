"""Streaming encoders, checked end to end by decoding with real codecs (PyAV)."""

from __future__ import annotations

import io
import struct
import wave
from itertools import cycle

import av
import numpy as np
import pytest

from realtime.audio import g711
from realtime.audio.encoders import (
    AUDIO_FORMATS,
    CONTENT_TYPES,
    StreamEncoder,
    create_encoder,
)
from realtime.audio.pcm import float_to_int16, int16_bytes_to_float, int16_to_float

RATE = 24000
CHUNK_SIZES = (37, 480, 1000, 4096, 0, 1, 2399, 7, 960)
DEMUXERS = {"mp3": "mp3", "opus": "ogg", "aac": "aac", "flac": "flac", "wav": "wav"}
# Decoded length may exceed the input by at most one codec frame + encoder delay
# (in input-rate samples): LAME 576-sample frame + 1105 delay, AAC 1024 + 1024
# priming. Ogg/Opus trims pre-skip and end padding via granule positions.
MAX_EXTRA = {"mp3": 576 + 1105, "aac": 1024 + 1024, "opus": 960}


def sine(seconds: float, rate: int = RATE, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return float_to_int16(0.5 * np.sin(2 * np.pi * freq * t))


def feed(enc: StreamEncoder, pcm: np.ndarray) -> tuple[list[bytes], list[int]]:
    """Encode in irregular chunks; return each call's bytes and samples fed so far."""
    outs, fed, i = [], [], 0
    for n in cycle(CHUNK_SIZES):
        if i >= pcm.size:
            break
        outs.append(enc.encode(pcm[i : i + n]))
        i = min(i + n, pcm.size)
        fed.append(i)
    return outs, fed


def decode(fmt: str, data: bytes, rate: int = RATE) -> tuple[np.ndarray, int]:
    """Decode to mono float32 and the decoded sample rate."""
    if fmt == "pcm":
        return int16_bytes_to_float(data), rate
    if fmt in ("mulaw", "alaw"):
        dec = g711.mulaw_decode if fmt == "mulaw" else g711.alaw_decode
        return int16_to_float(dec(data)), rate
    parts, out_rate = [], rate
    with av.open(io.BytesIO(data), format=DEMUXERS[fmt]) as container:
        for frame in container.decode(audio=0):
            assert frame.layout.nb_channels == 1
            out_rate = frame.sample_rate
            arr = frame.to_ndarray().reshape(-1)
            if arr.dtype == np.int16:
                arr = int16_to_float(arr)
            elif arr.dtype == np.int32:
                arr = arr.astype(np.float32) / 2**31
            parts.append(arr.astype(np.float32))
    return (np.concatenate(parts) if parts else np.zeros(0, np.float32)), out_rate


def dominant_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.argmax(spectrum) * rate / x.size)


def expected_rate(fmt: str, rate: int = RATE) -> int:
    return 48000 if fmt == "opus" else rate  # Opus always decodes at 48 kHz


@pytest.mark.parametrize("fmt", AUDIO_FORMATS)
def test_round_trip_sine(fmt: str) -> None:
    pcm = sine(1.5)
    enc = create_encoder(fmt, RATE)
    assert (enc.format, enc.content_type, enc.sample_rate) == (fmt, CONTENT_TYPES[fmt], RATE)
    assert isinstance(enc, StreamEncoder)
    outs, _ = feed(enc, pcm)
    data = b"".join(outs) + enc.finish()

    audio, rate = decode(fmt, data)

    assert rate == expected_rate(fmt)
    in_s, out_s = pcm.size / RATE, audio.size / rate
    assert out_s >= in_s - 1e-3
    assert out_s <= in_s + MAX_EXTRA.get(fmt, 0) / RATE + 1e-3
    assert abs(dominant_hz(audio, rate) - 440) < 3
    assert np.sqrt(np.mean(audio**2)) > 0.2  # ~0.35 for a 0.5-amplitude sine


@pytest.mark.parametrize("fmt", AUDIO_FORMATS)
def test_every_prefix_is_a_valid_stream(fmt: str) -> None:
    """A client that disconnects (or is cut off) after any chunk has playable audio."""
    enc = create_encoder(fmt, RATE)
    outs, fed = feed(enc, sine(0.6))
    assert any(outs)
    for k in range(1, len(outs) + 1):
        prefix = b"".join(outs[:k])
        if not prefix:
            continue
        audio, rate = decode(fmt, prefix)
        assert audio.size > 0, f"prefix {k} decoded to nothing"
        assert audio.size / rate <= fed[k - 1] / RATE + 1e-3, f"prefix {k} too long"
    if fmt == "opus":  # pages are flushed one by one, never split across calls
        assert all(chunk.startswith(b"OggS") for chunk in outs if chunk)


@pytest.mark.parametrize("fmt", AUDIO_FORMATS)
def test_bytes_arrive_before_finish(fmt: str) -> None:
    enc = create_encoder(fmt, RATE)
    step = RATE // 50  # 20 ms, like a realtime engine
    pcm = sine(0.5)
    outs = [enc.encode(pcm[i : i + step]) for i in range(0, pcm.size, step)]
    assert b"".join(outs)
    first = next(i for i, b in enumerate(outs) if b)
    assert (first + 1) * step <= 0.15 * RATE, f"first bytes only after {first + 1} chunks"
    # After the start-up delay output keeps flowing: at most one codec frame
    # (FLAC's 2304-sample block is the largest, 96 ms) between non-empty calls.
    gap = longest = 0
    for chunk in outs[first:]:
        gap = 0 if chunk else gap + 1
        longest = max(longest, gap)
    assert longest * step <= 0.1 * RATE


@pytest.mark.parametrize("fmt", AUDIO_FORMATS)
def test_finish_without_audio(fmt: str) -> None:
    """Raw formats give an empty body; containers give a valid, playable file."""
    enc = create_encoder(fmt, RATE)
    assert enc.encode(np.zeros(0, dtype=np.int16)) == b""
    data = enc.finish()
    if fmt in ("pcm", "mulaw", "alaw"):
        assert data == b""
        return
    audio, _ = decode(fmt, data)
    if fmt == "wav":
        assert len(data) == 44 and audio.size == 0
    else:  # 20 ms of silence (+ codec delay) so the body always decodes
        assert 0 < audio.size and np.max(np.abs(audio)) < 1e-3


@pytest.mark.parametrize("rate", [22050, 44100])
def test_opus_resamples_unsupported_rates(rate: int) -> None:
    pcm = sine(1.0, rate)
    enc = create_encoder("opus", rate)
    assert enc.sample_rate == rate
    outs, _ = feed(enc, pcm)
    audio, out_rate = decode("opus", b"".join(outs) + enc.finish(), rate)
    assert out_rate == 48000
    assert abs(audio.size / out_rate - 1.0) < 0.01
    assert abs(dominant_hz(audio, out_rate) - 440) < 3


@pytest.mark.parametrize("fmt", ["mp3", "aac", "flac"])
def test_other_input_rates(fmt: str) -> None:
    pcm = sine(0.5, 16000)
    enc = create_encoder(fmt, 16000)
    outs, _ = feed(enc, pcm)
    audio, rate = decode(fmt, b"".join(outs) + enc.finish(), 16000)
    assert rate == 16000
    assert abs(dominant_hz(audio, rate) - 440) < 5


def test_flac_is_lossless() -> None:
    pcm = sine(0.3)
    enc = create_encoder("flac", RATE)
    outs, _ = feed(enc, pcm)
    audio, _ = decode("flac", b"".join(outs) + enc.finish())
    np.testing.assert_array_equal(float_to_int16(audio), pcm)


def test_bitrate_changes_lossy_output_size() -> None:
    sizes = []
    for bitrate in (32_000, 128_000):
        enc = create_encoder("mp3", RATE, bitrate=bitrate)
        outs, _ = feed(enc, sine(1.0))
        sizes.append(len(b"".join(outs) + enc.finish()))
    assert sizes[1] > 2 * sizes[0]


def test_wav_header_uses_unknown_sizes() -> None:
    enc = create_encoder("wav", 16000)
    data = enc.encode(np.array([1, -2, 3], dtype=np.int16))
    riff, riff_size, wave, fmt_tag, fmt_len = struct.unpack("<4sI4s4sI", data[:20])
    assert (riff, wave, fmt_tag, fmt_len) == (b"RIFF", b"WAVE", b"fmt ", 16)
    assert riff_size == 0xFFFFFFFF
    audio_fmt, channels, rate, byte_rate, align, bits = struct.unpack("<HHIIHH", data[20:36])
    assert (audio_fmt, channels, rate, byte_rate, align, bits) == (1, 1, 16000, 32000, 2, 16)
    assert data[36:44] == b"data" + b"\xff\xff\xff\xff"
    assert data[44:] == np.array([1, -2, 3], dtype="<i2").tobytes()
    assert enc.encode(np.array([4], dtype=np.int16)) == b"\x04\x00"  # header only once


def test_truncated_wav_readable_by_wave_module() -> None:
    """Readers that trust the header sizes read up to EOF with 0xFFFFFFFF sizes."""
    pcm = sine(0.1)
    data = create_encoder("wav", RATE).encode(pcm)
    with wave.open(io.BytesIO(data[: 44 + 1000])) as wav_file:
        assert (wav_file.getnchannels(), wav_file.getframerate()) == (1, RATE)
        assert wav_file.readframes(10**6) == pcm[:500].astype("<i2").tobytes()


def test_raw_formats_are_exact() -> None:
    pcm = np.array([0, 1000, -1000, 32767, -32768], dtype=np.int16)
    assert create_encoder("pcm", 8000).encode(pcm) == pcm.astype("<i2").tobytes()
    assert create_encoder("mulaw", 8000).encode(pcm) == g711.mulaw_encode(pcm)
    assert create_encoder("alaw", 8000).encode(pcm) == g711.alaw_encode(pcm)


@pytest.mark.parametrize("fmt", ["wav", "pcm", "mp3", "opus"])
def test_unusable_after_finish(fmt: str) -> None:
    enc = create_encoder(fmt, RATE)
    enc.encode(sine(0.1))
    enc.finish()
    assert enc.finish() == b""
    with pytest.raises(RuntimeError):
        enc.encode(sine(0.1))


def test_rejects_float_input() -> None:
    with pytest.raises(TypeError):
        create_encoder("pcm", RATE).encode(np.zeros(10, dtype=np.float32))


@pytest.mark.parametrize("fmt", ["ogg", "MP3", "", "wave"])
def test_unknown_format(fmt: str) -> None:
    with pytest.raises(ValueError):
        create_encoder(fmt, RATE)


def test_pcm_conversions() -> None:
    x = np.array([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0], dtype=np.float32)
    y = float_to_int16(x)
    assert y.dtype == np.int16
    assert y.tolist() == [-32767, -32767, 0, 16384, 32767, 32767]
    back = int16_to_float(y)
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, np.clip(x, -1, 1), atol=1 / 32767)
    np.testing.assert_array_equal(int16_bytes_to_float(y.astype("<i2").tobytes()), back)
