"""Container-less encoders: raw s16le PCM and G.711 mu-law / A-law.

These formats have no header or codec delay, so every encode() call returns
exactly the bytes for the samples given and any byte prefix is a valid stream.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from realtime.audio import g711
from realtime.audio.pcm import as_int16_mono


def _s16le(pcm: np.ndarray) -> bytes:
    return pcm.astype("<i2", copy=False).tobytes()


_CODECS: dict[str, Callable[[np.ndarray], bytes]] = {
    "pcm": _s16le,
    "mulaw": g711.mulaw_encode,
    "alaw": g711.alaw_encode,
}


class RawEncoder:
    """Stateless sample-by-sample encoder for ``pcm``, ``mulaw`` and ``alaw``."""

    def __init__(self, fmt: str, content_type: str, sample_rate: int) -> None:
        if fmt not in _CODECS:
            raise ValueError(f"not a raw audio format: {fmt!r}")
        self.format = fmt
        self.content_type = content_type
        self.sample_rate = sample_rate
        self._encode = _CODECS[fmt]
        self._finished = False

    def encode(self, pcm: np.ndarray) -> bytes:
        """Encode mono int16 samples; output is immediate (no buffering)."""
        if self._finished:
            raise RuntimeError("encoder used after finish()")
        samples = as_int16_mono(pcm)
        return self._encode(samples) if samples.size else b""

    def finish(self) -> bytes:
        """Nothing is buffered, so there is no tail; an empty stream is valid."""
        self._finished = True
        return b""
