"""The server's outgoing WebRTC audio: exact 20 ms frames at 48 kHz, paced in real time.

aiortc pulls frames from a track's `recv()` as fast as it returns them, so the
track paces itself. `FramePacer` (pure, steppable with any clock) keeps an
absolute schedule that never drifts; `PacedAudioTrack` fills each slot with the
next queued frame of speech, or silence when there is none, so the browser's
jitter buffer sees a continuous stream. The queue is small and bounded: the
session's writer waits on `push` when it is full, which is what makes the
session's own pacing (`lead_ms`) hold for WebRTC too.
"""

from __future__ import annotations

import asyncio
import fractions
from collections import deque
from dataclasses import dataclass

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ..audio.fade import fade_out
from ..session.clock import Clock, MonotonicClock


class FramePacer:
    """When each frame is due: `start + n * frame_s`, resynchronised after a long stall.

    After a stall (the event loop was blocked, the peer's sender paused) longer
    than `resync_s`, the schedule restarts from now instead of bursting out every
    missed frame at once, which the receiver would only drop as late.
    """

    def __init__(self, frame_s: float, resync_s: float = 0.2) -> None:
        self.frame_s = frame_s
        self.resync_s = resync_s
        self._start: float | None = None
        self._index = 0
        self.resyncs = 0

    def due(self, now: float) -> float:
        """When the next frame should leave (≤ now: at once)."""
        if self._start is None:
            self._start = now
            self._index = 0
        due = self._start + self._index * self.frame_s
        if now - due > self.resync_s:
            self._start, self._index, due = now, 0, now
            self.resyncs += 1
        return due

    def sent(self) -> None:
        self._index += 1


@dataclass
class TrackStats:
    frames: int = 0
    speech_frames: int = 0
    silent_frames: int = 0
    dropped_ms: float = 0.0


class PacedAudioTrack(MediaStreamTrack):
    """A mono s16 audio track fed with whole frames; silence whenever nothing is queued."""

    kind = "audio"

    def __init__(
        self,
        *,
        sample_rate: int = 48000,
        frame_ms: int = 20,
        capacity_frames: int = 5,
        clock: Clock | None = None,
        lateness_window: int = 3000,
    ) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.frame_samples = sample_rate * frame_ms // 1000
        self.capacity = capacity_frames
        self._clock = clock or MonotonicClock()
        """Reads the time only: the wait for a frame's slot is real (aiortc pulls in real time)."""
        self._pacer = FramePacer(frame_ms / 1000.0)
        self._queue: deque[tuple[np.ndarray, str]] = deque()
        self._space = asyncio.Event()
        self._space.set()
        self._silence = np.zeros(self.frame_samples, np.int16)
        self._time_base = fractions.Fraction(1, sample_rate)
        self._pts = 0
        self.stats = TrackStats()
        self.lateness_s: deque[float] = deque(maxlen=lateness_window)
        """How late each recent frame left against its slot: the pacing jitter."""
        self.first_speech_at: float | None = None

    @property
    def queued_ms(self) -> float:
        return len(self._queue) * self.frame_samples * 1000.0 / self.sample_rate

    async def push(self, pcm: np.ndarray, context_id: str) -> None:
        """Queue one frame of int16 samples; waits while the queue is full."""
        if pcm.size != self.frame_samples:
            raise ValueError(f"frames must be {self.frame_samples} samples, got {pcm.size}")
        while len(self._queue) >= self.capacity:
            if self.readyState != "live":
                raise MediaStreamError
            self._space.clear()
            await self._space.wait()
        self._queue.append((pcm, context_id))

    def drop(self, context_id: str) -> float:
        """Forget a context's queued frames (barge-in); the first one fades out in 10 ms instead
        of stopping dead, since it directly follows what was played. Returns the ms dropped."""
        kept = [(pcm, ctx) for pcm, ctx in self._queue if ctx != context_id]
        dropped = [pcm for pcm, ctx in self._queue if ctx == context_id]
        if not dropped:
            return 0.0
        faded = np.zeros(self.frame_samples, np.int16)
        fade = fade_out(dropped[0], self.sample_rate)
        faded[: fade.size] = fade
        self._queue = deque([(faded, context_id), *kept])
        self._space.set()
        ms = (len(dropped) - 1) * self.frame_samples * 1000.0 / self.sample_rate
        self.stats.dropped_ms += ms
        return ms

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        due = self._pacer.due(self._clock.now())
        wait = due - self._clock.now()
        if wait > 0:
            await asyncio.sleep(wait)
        if self.readyState != "live":
            raise MediaStreamError
        now = self._clock.now()
        self.lateness_s.append(max(0.0, now - due))
        self._pacer.sent()
        if self._queue:
            pcm, _ = self._queue.popleft()
            self._space.set()
            self.stats.speech_frames += 1
            if self.first_speech_at is None:
                self.first_speech_at = now
        else:
            pcm = self._silence
            self.stats.silent_frames += 1
        self.stats.frames += 1
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.sample_rate
        frame.pts = self._pts
        frame.time_base = self._time_base
        self._pts += self.frame_samples
        return frame

    def stop(self) -> None:
        super().stop()
        self._queue.clear()
        self._space.set()
