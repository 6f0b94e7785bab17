"""Crossfades at segment seams: no clicks, nothing lost but the overlap."""

from __future__ import annotations

import numpy as np

from realtime.session.stitcher import Stitcher

RATE = 24000


def stitch(segments: list[list[np.ndarray]], crossfade_ms: float = 5.0) -> tuple[np.ndarray, Stitcher]:
    s = Stitcher(RATE, crossfade_ms)
    out = []
    for chunks in segments:
        s.start_segment()
        for chunk in chunks:
            out.append(s.push(chunk))
        s.end_segment()
    out.append(s.finish())
    return np.concatenate(out), s


def test_level_jump_at_a_seam_becomes_a_smooth_ramp() -> None:
    a = np.full(2400, 0.5, np.float32)
    b = np.full(2400, -0.5, np.float32)
    naive = np.concatenate([a, b])
    joined, s = stitch([[a], [b]])
    assert np.abs(np.diff(naive)).max() == 1.0  # the click we avoid
    assert np.abs(np.diff(joined)).max() < 0.01
    assert joined.size == naive.size - s.fade


def test_chunking_does_not_change_the_result() -> None:
    rng = np.random.default_rng(1)
    segs = [rng.uniform(-0.5, 0.5, n).astype(np.float32) for n in (3000, 500, 4000)]
    whole, _ = stitch([[x] for x in segs])
    pieces = [[x[i : i + 37] for i in range(0, x.size, 37)] for x in segs]
    chunked, _ = stitch(pieces)
    np.testing.assert_allclose(chunked, whole, atol=1e-6)


def test_segment_shorter_than_the_fade_is_kept() -> None:
    a = np.full(1000, 0.2, np.float32)
    tiny = np.full(30, 0.2, np.float32)
    joined, s = stitch([[a], [tiny], [a]])
    assert np.abs(np.diff(joined)).max() < 0.05
    assert joined.size >= a.size * 2 - 2 * s.fade


def test_sine_seam_between_segments_is_continuous() -> None:
    t = np.arange(4800) / RATE
    a = (0.5 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    b = (0.5 * np.sin(2 * np.pi * 200 * t + 2.0)).astype(np.float32)  # phase jump at the seam
    joined, _ = stitch([[a], [b]])
    max_natural_step = 0.5 * 2 * np.pi * 200 / RATE
    assert np.abs(np.diff(joined)).max() < 3 * max_natural_step


def test_fade_out_on_cancel_is_short_and_ends_silent() -> None:
    s = Stitcher(RATE, crossfade_ms=5.0)
    s.start_segment()
    s.push(np.full(4800, 0.8, np.float32))
    tail = s.fade_out(fade_ms=10.0)
    assert 0 < tail.size <= RATE * 10 // 1000
    assert abs(tail[-1]) < 0.05 and tail[0] > 0.7
    assert s.finish().size == 0  # nothing held after a cancel


def test_next_sample_at_says_where_a_segment_starts_in_the_output() -> None:
    """After the held tail mid-segment; over its start at a seam (they overlap by the fade)."""
    st = Stitcher(1000, crossfade_ms=10.0)  # fade: 10 samples
    out = st.push(np.ones(50, dtype=np.float32))
    assert out.size == 40 and st.next_sample_at(out.size) == 50
    st.end_segment()
    st.start_segment()
    assert st.next_sample_at(out.size) == 40, "the next segment's first sample overlaps the held tail"
    first = st.push(np.full(4, 2.0, dtype=np.float32))
    assert first.size == 0 and st.next_sample_at(out.size) == 44
