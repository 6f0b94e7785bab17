"""The short fade-out that ends audio cut off mid-stream (cancel, barge-in).

Stopping a waveform dead clicks; ramping its next few milliseconds down to
silence does not. Three places cut audio (the stitcher's held tail on cancel,
a session's unsent frames on interruption, the WebRTC track's queue on
barge-in); all use this one ramp, so they sound alike and stay short.
"""

from __future__ import annotations

import numpy as np

FADE_MS = 10.0
"""Long enough not to click, short enough that nothing more of the cut speech is heard."""


def fade_out(samples: np.ndarray, sample_rate: int, fade_ms: float = FADE_MS) -> np.ndarray:
    """The first `fade_ms` of `samples` (or all of them if shorter) under a quarter-cosine ramp from
    full level to silence; float32 stays float32, integer PCM keeps its type. A new array."""
    n = min(samples.size, int(sample_rate * fade_ms / 1000.0))
    ramp = np.cos(np.linspace(0.0, np.pi / 2, n, dtype=np.float32))
    faded = samples[:n].astype(np.float32) * ramp
    return faded if samples.dtype == np.float32 else faded.astype(samples.dtype)
