"""Conversions between float32 and int16 PCM.

Engines produce float32 in [-1, 1]; codecs and the wire want int16. Keeping the
conversion in one place makes the scaling convention (x 32767, clipped) uniform.
"""

from __future__ import annotations

import numpy as np

_INT16_SCALE = 32767.0


def float_to_int16(x: np.ndarray) -> np.ndarray:
    """Clip to [-1, 1] and scale to int16 so out-of-range engine output cannot wrap."""
    x = np.asarray(x, dtype=np.float32)
    return np.round(np.clip(x, -1.0, 1.0) * _INT16_SCALE).astype(np.int16)


def int16_to_float(x: np.ndarray) -> np.ndarray:
    """Scale int16 samples to float32 in [-1, 1] (inverse of :func:`float_to_int16`)."""
    return np.asarray(x, dtype=np.int16).astype(np.float32) / _INT16_SCALE


def int16_bytes_to_float(b: bytes) -> np.ndarray:
    """Interpret little-endian s16 bytes as float32 samples."""
    return int16_to_float(np.frombuffer(b, dtype="<i2"))


def as_int16_mono(pcm: np.ndarray) -> np.ndarray:
    """Validate encoder input as a flat int16 array.

    Floats are rejected rather than silently cast: a float buffer handed to an
    int16 path would truncate to near-silence, which is much harder to debug.
    """
    arr = np.asarray(pcm)
    if arr.dtype != np.int16:
        raise TypeError(f"expected int16 PCM, got {arr.dtype} (use float_to_int16)")
    return np.ascontiguousarray(arr).reshape(-1)
