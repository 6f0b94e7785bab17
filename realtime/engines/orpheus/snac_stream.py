"""Streaming SNAC decoding for Orpheus: one utterance's frames in, audio chunks with clean seams out.

SNAC's decoder is a stack of non-causal convolutions: the audio of a frame depends
on about two frames of codes on either side (measured: the difference to a
whole-sequence decode falls ~20 dB per 1024 samples from a window edge and is
gone beyond ~4096 samples). Each decode call (`SnacStream`) therefore takes a
*window* of frames:

    [ left context >= 1 frame | new frames | lookahead ]
                              ^E (emitted so far)      ^T (emit up to)  ^n*2048 (window end)

and emits samples [E, T), where T lies a lookahead before the end of the window.
The lookahead is the quality/latency trade: 1024 samples for the first call (the
first chunk comes after 2 frames, 14 tokens, and holds 1.5 frames of audio), when
less than `healthy_s` of audio is buffered ahead of playback, and in low-latency
mode; 3072 samples once the buffer can afford holding that much back. The decoded
audio beyond T is kept as a provisional tail; the next call overwrites it,
blending the first `crossfade` samples (256, ~10 ms) linearly from the old tail
into the new audio, so a seam never steps. `finish` decodes the last window with
no lookahead (the sequence really ends there, as in a whole-sequence decode), or
emits the tail as is when no frame came after the last decode. Output is exactly
`frames * 2048` samples.

Window sizes come from `WindowPlanner` and are rounded up to a few buckets
(every size to 8, then 10, 12, 16, ... frames) by extending the left context, so windows of different
streams often have the same length and batch together.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .codes import SAMPLE_RATE, SAMPLES_PER_FRAME, frames_to_levels
from .snac_model import Levels, decode_windows

if TYPE_CHECKING:
    from torch import nn

FRAME_S = SAMPLES_PER_FRAME / SAMPLE_RATE
DEFAULT_BUCKETS = (2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 20, 24, 32)


class WindowDecoder(Protocol):
    async def decode(self, levels: Levels, start_frame: int = 0) -> np.ndarray: ...


# --------------------------------------------------------------------------- planning


@dataclass
class WindowPlanner:
    """How many new frames a stream should gather before its next decode call. Pure: no clock, no I/O.

    Bigger windows cost less per frame (the context around them is decoded once
    per call) but hold audio back longer. The plan is the largest count whose
    wait plus decode still fits in the audio buffered ahead of playback, but at
    least what keeps decoding faster than real time, and at most double the
    previous plan (grow smoothly, shrink at once). Callers feed measurements:
    `observe` after each decode (seconds including any batching delay) and
    optionally `observe_arrival` with the token generator's pace.
    """

    first_frames: int = 2
    min_frames: int = 1
    max_frames: int = 16
    low_latency: bool = False
    low_latency_max: int = 2
    context_frames: int = 2
    """Frames decoded besides the new ones (left context + lookahead): the cost model's overhead."""
    safety_s: float = 0.1
    alpha: float = 0.3
    decode_s_per_frame: float | None = None
    """EWMA of decode seconds per decoded window frame."""
    frame_interval_s: float = FRAME_S
    """EWMA of seconds between frames from the generator (real time until measured)."""
    last_frames: int = 0

    def observe(self, window_frames: int, seconds: float, new_frames: int | None = None) -> None:
        """Record one decode: `window_frames` decoded in `seconds`, `new_frames` of them new."""
        per_frame = seconds / max(1, window_frames)
        if self.decode_s_per_frame is None:
            self.decode_s_per_frame = per_frame
        else:
            self.decode_s_per_frame += self.alpha * (per_frame - self.decode_s_per_frame)
        if new_frames is not None:
            self.last_frames = new_frames

    def observe_arrival(self, frames: int, seconds: float) -> None:
        """Record that `frames` frames came from the generator in `seconds`."""
        if frames > 0:
            self.frame_interval_s += self.alpha * (seconds / frames - self.frame_interval_s)

    def plan(self, buffered_s: float) -> int:
        """New frames to gather before the next decode, given `buffered_s` of audio queued ahead of playback."""
        top = min(self.max_frames, self.low_latency_max) if self.low_latency else self.max_frames
        cost = self.decode_s_per_frame
        if cost is None:
            return max(1, min(self.min_frames, top))
        interval = max(self.frame_interval_s, 1e-6)
        fit = math.floor((buffered_s - self.safety_s - cost * self.context_frames) / (interval + cost))
        if cost < interval:
            keep_up = math.ceil(cost * self.context_frames / (interval - cost))
        else:
            keep_up = top  # slower than real time at any size: at least make it as cheap as possible
        frames = max(fit, keep_up)
        if self.last_frames > 0:
            frames = min(frames, 2 * self.last_frames)
        return max(1, min(max(frames, self.min_frames), top))


# --------------------------------------------------------------------------- streaming


@dataclass
class DecodeWindow:
    """One decode call's worth of a stream: frames [start_frame, end_frame), emitting samples [emit_from, emit_to)."""

    start_frame: int
    end_frame: int
    emit_from: int
    emit_to: int
    final: bool
    levels: Levels = field(repr=False)

    @property
    def frames(self) -> int:
        return self.end_frame - self.start_frame


class SnacStream:
    """One utterance's frames in, float32 audio chunks out (see the module docstring for the scheme).

    The core is synchronous and decoder-agnostic: `push`, `due`, `take_window`,
    `complete`. `feed` and `finish` run it against a `WindowDecoder` (e.g. the
    shared `SnacBatcher`). One window is in flight at a time; a cancelled decode
    leaves the stream as it was, so it can be retried.
    """

    def __init__(
        self,
        planner: WindowPlanner | None = None,
        *,
        left_context: int = SAMPLES_PER_FRAME,
        lookahead: int = 3 * SAMPLES_PER_FRAME // 2,
        min_lookahead: int = SAMPLES_PER_FRAME // 2,
        healthy_s: float = 0.3,
        crossfade: int = 256,
        buckets: Sequence[int] = DEFAULT_BUCKETS,
    ) -> None:
        if not 0 <= crossfade <= min_lookahead <= lookahead:
            raise ValueError("need 0 <= crossfade <= min_lookahead <= lookahead")
        self.planner = planner or WindowPlanner()
        # The planner's cost model: frames decoded on top of the new ones in each window.
        self.planner.context_frames = math.ceil((left_context + lookahead) / SAMPLES_PER_FRAME)
        self.left_context = left_context
        self.lookahead = lookahead
        self.min_lookahead = min_lookahead
        self.healthy_s = healthy_s
        self.buffered_s = 0.0
        """Audio queued ahead of playback at the last `due` check: picks the lookahead."""
        self.crossfade = crossfade
        self.buckets = tuple(sorted(buckets))
        self.frames: list[Sequence[int]] = []
        self.emitted = 0
        self.decoded_frames = 0
        self.decode_calls = 0
        self.decoded_window_frames = 0
        self._tail = np.zeros(0, dtype=np.float32)
        self._in_flight: DecodeWindow | None = None
        self.finished = False

    # -- synchronous core

    def push(self, frame: Sequence[int]) -> None:
        if self.finished:
            raise RuntimeError("stream already finished")
        if len(frame) != 7:
            raise ValueError(f"a frame has 7 codes, got {len(frame)}")
        self.frames.append(frame)

    @property
    def pending_frames(self) -> int:
        return len(self.frames) - self.decoded_frames

    def due(self, buffered_s: float = 0.0) -> bool:
        """Whether to decode now, given `buffered_s` of this stream's audio queued ahead of playback."""
        self.buffered_s = buffered_s
        if self._in_flight is not None or self.pending_frames <= 0:
            return False
        if self.decoded_frames == 0:
            return len(self.frames) >= self.planner.first_frames
        return self.pending_frames >= self.planner.plan(buffered_s)

    def _bucket(self, frames: int) -> int:
        for size in self.buckets:
            if size >= frames:
                return size
        return frames

    def take_window(self, final: bool = False) -> DecodeWindow | None:
        """The next window to decode, or None when there is nothing to decode (final: emit the tail)."""
        if self._in_flight is not None:
            raise RuntimeError("a window is already in flight")
        n = len(self.frames)
        if n == self.decoded_frames:
            return None
        earliest = max(0, self.emitted - self.left_context) // SAMPLES_PER_FRAME
        start = max(0, n - self._bucket(n - earliest))
        end_sample = n * SAMPLES_PER_FRAME
        if final:
            emit_to = end_sample
        else:
            ahead = self.lookahead
            if self.decoded_frames == 0 or self.planner.low_latency or self.buffered_s < self.healthy_s:
                ahead = self.min_lookahead
            emit_to = max(self.emitted, end_sample - ahead)
        window = DecodeWindow(
            start_frame=start,
            end_frame=n,
            emit_from=self.emitted,
            emit_to=emit_to,
            final=final,
            levels=frames_to_levels(self.frames[start:n]),
        )
        self._in_flight = window
        return window

    def abort(self, window: DecodeWindow) -> None:
        """Forget an in-flight window whose decode failed or was cancelled."""
        if self._in_flight is window:
            self._in_flight = None

    def complete(self, window: DecodeWindow, audio: np.ndarray) -> np.ndarray:
        """The chunk for a decoded window: samples [emit_from, emit_to) of the stream."""
        if self._in_flight is not window:
            raise RuntimeError("not the window in flight")
        expected = window.frames * SAMPLES_PER_FRAME
        if audio.shape != (expected,):
            raise ValueError(
                f"window of {window.frames} frames decoded to {audio.shape}, expected ({expected},)"
            )
        self._in_flight = None
        new = audio[window.emit_from - window.start_frame * SAMPLES_PER_FRAME :].astype(np.float32, copy=True)
        overlap = min(self.crossfade, self._tail.size)
        if overlap:
            ramp = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
            new[:overlap] = self._tail[:overlap] * (1.0 - ramp) + new[:overlap] * ramp
        cut = window.emit_to - window.emit_from
        chunk, self._tail = new[:cut], new[cut:]
        self.emitted = window.emit_to
        self.decoded_frames = window.end_frame
        self.decode_calls += 1
        self.decoded_window_frames += window.frames
        if window.final:
            self.finished = True
        return chunk

    def finish_without_decode(self) -> np.ndarray:
        """At the end, when no frame came after the last decode: that decode's tail is final audio."""
        if self.pending_frames:
            raise RuntimeError("frames are pending: decode a final window")
        chunk, self._tail = self._tail, np.zeros(0, dtype=np.float32)
        self.emitted = len(self.frames) * SAMPLES_PER_FRAME
        self.finished = True
        return chunk

    # -- async drivers

    async def _run(self, decoder: WindowDecoder, final: bool) -> np.ndarray | None:
        window = self.take_window(final)
        if window is None:
            return None
        new_frames = window.end_frame - self.decoded_frames
        started = time.perf_counter()
        try:
            audio = await decoder.decode(window.levels, window.start_frame)
        except BaseException:
            self.abort(window)
            raise
        self.planner.observe(window.frames, time.perf_counter() - started, new_frames)
        return self.complete(window, audio)

    async def feed(
        self, frame: Sequence[int], decoder: WindowDecoder, buffered_s: float = 0.0
    ) -> np.ndarray | None:
        """Push one frame; decode when the plan says so. Returns a chunk or None."""
        self.push(frame)
        if not self.due(buffered_s):
            return None
        return await self._run(decoder, final=False)

    async def finish(self, decoder: WindowDecoder) -> np.ndarray:
        """The rest of the audio, up to exactly `frames * 2048` samples in total."""
        if self.finished:
            return np.zeros(0, dtype=np.float32)
        if self.pending_frames == 0:
            return self.finish_without_decode()
        chunk = await self._run(decoder, final=True)
        return chunk if chunk is not None else np.zeros(0, dtype=np.float32)


def decode_stream_offline(
    model: nn.Module,
    frames: Sequence[Sequence[int]],
    stream: SnacStream | None = None,
    buffered_s: float = 1.0,
) -> list[np.ndarray]:
    """Drive a stream synchronously over `frames`, as if each arrived with `buffered_s` of audio queued.

    For tests, benchmarks and seam measurements; servers use `feed`/`finish` with a `SnacBatcher`.
    """
    stream = stream or SnacStream()

    def run(window: DecodeWindow) -> np.ndarray:
        new_frames = window.end_frame - stream.decoded_frames
        started = time.perf_counter()
        audio = decode_windows(model, [(window.levels, window.start_frame)])[0]
        stream.planner.observe(window.frames, time.perf_counter() - started, new_frames)
        return stream.complete(window, audio)

    chunks = []
    for frame in frames:
        stream.push(frame)
        if stream.due(buffered_s):
            window = stream.take_window()
            if window is not None:
                chunks.append(run(window))
    window = stream.take_window(final=True)
    chunks.append(stream.finish_without_decode() if window is None else run(window))
    return chunks
