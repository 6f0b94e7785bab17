"""Streaming sample-rate conversion for mono float32 audio.

Engines emit audio at their native rate while clients ask for another; chunks
arrive incrementally, so the resampler must keep filter state across calls
rather than resampling each chunk independently (which would click at chunk
boundaries and drift in length).
"""

from __future__ import annotations

import numpy as np
import soxr

_EMPTY = np.zeros(0, dtype=np.float32)


class StreamResampler:
    """Stateful mono float32 resampler; a passthrough when the rates match."""

    def __init__(self, in_rate: int, out_rate: int, quality: str = "HQ") -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream: soxr.ResampleStream | None = None
        if in_rate != out_rate:
            self._stream = soxr.ResampleStream(in_rate, out_rate, 1, "float32", quality)
        self._finished = False

    @property
    def passthrough(self) -> bool:
        """True when no conversion happens (equal rates)."""
        return self._stream is None

    def process(self, x: np.ndarray) -> np.ndarray:
        """Feed a chunk of any size; return the output that is ready now."""
        x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
        if self._stream is None:
            return x
        if self._finished:
            raise RuntimeError("StreamResampler used after flush()")
        if x.size == 0:
            return _EMPTY.copy()
        return self._stream.resample_chunk(x)

    def flush(self) -> np.ndarray:
        """Drain the filter tail; the resampler is finished afterwards."""
        if self._stream is None or self._finished:
            return _EMPTY.copy()
        self._finished = True
        return self._stream.resample_chunk(_EMPTY, last=True)
