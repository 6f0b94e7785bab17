"""Raw `pcm` (s16le mono) as it arrives from an upstream, turned into float32 samples.

An HTTP read ends wherever TCP cut the stream, often inside a sample: the odd byte is carried to
the next read rather than dropped or misaligning everything after it.
"""

from __future__ import annotations

import numpy as np

from ...audio.pcm import int16_bytes_to_float

_EMPTY = np.zeros(0, dtype=np.float32)


class Pcm16Stream:
    """Feed it reads in order; it returns the whole samples they complete."""

    def __init__(self) -> None:
        self._carry = b""

    @property
    def pending_bytes(self) -> int:
        """Bytes of a sample still waiting for its other half (0 or 1)."""
        return len(self._carry)

    def feed(self, data: bytes) -> np.ndarray:
        if self._carry:
            data = self._carry + data
        whole = len(data) & ~1
        self._carry = data[whole:]
        if not whole:
            return _EMPTY
        return int16_bytes_to_float(memoryview(data)[:whole])
