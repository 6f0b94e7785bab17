"""Streaming resampling must match one-shot resampling, whatever the chunking."""

from __future__ import annotations

import numpy as np
import pytest
import soxr

from realtime.audio.resample import StreamResampler


def _stream(resampler: StreamResampler, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out, i = [], 0
    while i < x.size:
        n = int(rng.integers(0, 3000))  # includes empty chunks
        out.append(resampler.process(x[i : i + n]))
        i += n
    out.append(resampler.flush())
    return np.concatenate(out)


@pytest.mark.parametrize(("in_rate", "out_rate"), [(22050, 24000), (24000, 8000), (48000, 24000)])
def test_streaming_matches_one_shot(in_rate: int, out_rate: int) -> None:
    rng = np.random.default_rng(1234)
    t = np.arange(in_rate) / in_rate
    x = (0.5 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(in_rate)).astype(np.float32)

    y = _stream(StreamResampler(in_rate, out_rate), x, rng)
    ref = soxr.resample(x, in_rate, out_rate, quality="HQ")

    assert y.dtype == np.float32
    assert abs(y.size - x.size * out_rate / in_rate) <= 2
    n = min(y.size, ref.size)
    np.testing.assert_allclose(y[:n], ref[:n], atol=1e-4)


def test_equal_rates_pass_through() -> None:
    r = StreamResampler(24000, 24000)
    assert r.passthrough
    x = np.linspace(-1, 1, 101, dtype=np.float64)
    y = r.process(x)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, x.astype(np.float32))
    assert r.flush().size == 0


def test_empty_chunks_and_flush() -> None:
    r = StreamResampler(24000, 16000)
    assert r.process(np.zeros(0, dtype=np.float32)).size == 0
    r.process(np.ones(2400, dtype=np.float32))
    r.flush()
    with pytest.raises(RuntimeError):
        r.process(np.ones(10, dtype=np.float32))


def test_rejects_bad_rates() -> None:
    with pytest.raises(ValueError):
        StreamResampler(0, 16000)
