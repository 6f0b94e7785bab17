"""Joins independently synthesized segments without clicks.

Each segment's last `fade` samples are held back; when the next segment
starts they are overlap-added with its first samples under equal-power
(sine/cosine) ramps. Two segments that end and start at different levels
then meet smoothly instead of jumping. The held tail costs `fade` samples of
latency at segment ends only, and each seam shortens the audio by `fade`
samples. On cancel, `fade_out` ramps what is held to silence so a barge-in cut
does not click either.
"""

from __future__ import annotations

import numpy as np

from ..audio.fade import FADE_MS, fade_out

_EMPTY = np.zeros(0, dtype=np.float32)


class Stitcher:
    def __init__(self, sample_rate: int, crossfade_ms: float = 5.0) -> None:
        self.sample_rate = sample_rate
        self.fade = max(1, int(sample_rate * crossfade_ms / 1000.0))
        ramp = np.linspace(0.0, np.pi / 2, self.fade, dtype=np.float32)
        self._fade_in = np.sin(ramp).astype(np.float32)
        self._fade_out = np.cos(ramp).astype(np.float32)
        self._tail = _EMPTY
        self._head = _EMPTY
        self._joining = False
        """True from a segment start until its head has been blended with the held tail."""

    def _blend(self, head: np.ndarray) -> np.ndarray:
        """Overlap the held tail's last k samples with the head's first k (k = the shorter)."""
        k = min(self._tail.size, head.size)
        if k == self.fade:
            fade_in, fade_out = self._fade_in, self._fade_out
        else:
            ramp = np.linspace(0.0, np.pi / 2, k, dtype=np.float32)
            fade_in, fade_out = np.sin(ramp), np.cos(ramp)
        overlap = self._tail[self._tail.size - k :] * fade_out + head[:k] * fade_in
        return np.concatenate([self._tail[: self._tail.size - k], overlap, head[k:]])

    def next_sample_at(self, emitted: int) -> int:
        """Where the next sample pushed lands in the output, `emitted` samples having gone out: after
        the held tail, or, at a seam, over its start (the tail and the new segment overlap)."""
        return emitted + (self._head.size if self._joining else self._tail.size)

    def start_segment(self) -> None:
        self._joining = self._tail.size > 0

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Feed audio of the current segment; returns what may be emitted now."""
        x = np.asarray(samples, dtype=np.float32)
        if self._joining:
            self._head = np.concatenate([self._head, x])
            if self._head.size < self._tail.size:
                return _EMPTY
            x, self._head, self._tail, self._joining = self._blend(self._head), _EMPTY, _EMPTY, False
        joined = np.concatenate([self._tail, x]) if self._tail.size else x
        keep = min(self.fade, joined.size)
        self._tail = joined[joined.size - keep :].copy()
        return joined[: joined.size - keep]

    def end_segment(self) -> None:
        """The current segment is complete; its tail waits to be blended into the next one."""
        if self._joining:  # a segment shorter than the fade: fold it into the held tail
            self._tail, self._head, self._joining = self._blend(self._head), _EMPTY, False

    def finish(self) -> np.ndarray:
        """No more segments: release everything held, unchanged."""
        self.end_segment()
        tail, self._tail = self._tail, _EMPTY
        return tail

    def fade_out(self, fade_ms: float = FADE_MS) -> np.ndarray:
        """Cancel: the held audio (at most `fade_ms` of it) ramped down to silence."""
        audio = np.concatenate([self._tail, self._head])
        self._tail, self._head, self._joining = _EMPTY, _EMPTY, False
        return fade_out(audio, self.sample_rate, fade_ms)
