"""SNAC 24 kHz decoding for Orpheus: loading, streaming windows with clean seams, batching across sessions.

Streaming scheme (`SnacStream`)
-------------------------------
SNAC's decoder is a stack of non-causal convolutions: the audio of a frame depends
on about two frames of codes on either side (measured: the difference to a
whole-sequence decode falls ~20 dB per 1024 samples from a window edge and is
gone beyond ~4096 samples). Each decode call therefore takes a *window* of frames:

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

Noise: SNAC 24 kHz adds `randn` noise (scaled by a learned 1x1 conv) in each
decoder block. Fresh noise per call would make overlapping windows disagree and
batch results depend on their batch-mates, so by default the noise is drawn from
fixed tables indexed by absolute sample position ("positional"): same
distribution, but a window decodes to the same audio wherever and with whatever
it is batched. "random" keeps SNAC's own behaviour; "off" drops the noise.

Batching (`SnacBatcher`) groups pending windows by frame count and decodes each
group in one call. It does not pad: padding codes are not silence, and the
non-causal convolutions would carry padded content into the window's edge, so a
padded window would not decode to the audio it decodes to alone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from torch import nn

from .codes import SAMPLE_RATE, SAMPLES_PER_FRAME, frames_to_levels

if TYPE_CHECKING:
    from snac import SNAC

logger = logging.getLogger(__name__)

SNAC_24KHZ_CONFIG: dict[str, Any] = {
    "sampling_rate": 24000,
    "encoder_dim": 48,
    "encoder_rates": [2, 4, 8, 8],
    "decoder_dim": 1024,
    "decoder_rates": [8, 8, 4, 2],
    "attn_window_size": None,
    "codebook_size": 4096,
    "codebook_dim": 8,
    "vq_strides": [4, 2, 1],
    "noise": True,
    "depthwise": True,
}
"""hubertsiuzdak/snac_24khz, the codec Orpheus was trained on."""

NOISE_MODES = ("positional", "random", "off")
FRAME_S = SAMPLES_PER_FRAME / SAMPLE_RATE
DEFAULT_BUCKETS = (2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 20, 24, 32)

Levels = tuple[np.ndarray, np.ndarray, np.ndarray]
"""SNAC's three code arrays for F frames: (F,), (2F,), (4F,) (see `codes.frames_to_levels`)."""


# --------------------------------------------------------------------------- loading


def load_snac(
    path: str | Path | None,
    *,
    config: dict[str, Any] | None = None,
    device: str = "cpu",
    noise: str = "positional",
    noise_seed: int = 0,
    keep_encoder: bool = False,
) -> SNAC:
    """A SNAC model ready for decoding: weight norm folded, eval mode, on `device`.

    `path` is a local checkpoint directory as hubertsiuzdak/snac_24khz ships it
    (`config.json` + `pytorch_model.bin`), or the `.bin` file itself with its
    `config.json` beside it; `config` overrides the file's config. With `path`
    None the model is randomly initialised from `config` (default: the 24 kHz
    shape), which is what tests and benchmarks use: weights cannot be downloaded here.
    The encoder is dropped unless `keep_encoder`: decoding never needs it.
    """
    from snac import SNAC  # the orpheus extra: imported only when a model is loaded

    if path is not None:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"SNAC checkpoint {path} not found")
        directory = path if path.is_dir() else path.parent
        weights = path if path.is_file() else directory / "pytorch_model.bin"
        if config is None:
            config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
        model = SNAC(**config)
        # weights_only: a checkpoint is data, never code to run.
        state = torch.load(weights, map_location="cpu", weights_only=True)
        # Old checkpoints carry weight_g/weight_v; torch's weight_norm parametrization converts them on load.
        model.load_state_dict(state, strict=True)
        logger.info("SNAC loaded from %s", weights)
    else:
        model = SNAC(**(config if config is not None else SNAC_24KHZ_CONFIG))
        logger.info("SNAC randomly initialised (no checkpoint path)")
    hop = math.prod(model.decoder_rates)
    if list(model.vq_strides) != [4, 2, 1] or hop * 4 != SAMPLES_PER_FRAME:
        raise ValueError(
            f"Orpheus needs SNAC's 24 kHz layout (vq_strides [4, 2, 1], 512 samples per step), "
            f"got vq_strides {model.vq_strides} and {hop} samples per step"
        )
    remove_weight_norm(model)
    if not keep_encoder:
        model.encoder = nn.Identity()
    set_noise_mode(model, noise, seed=noise_seed)
    model.eval()
    return model.to(resolve_device(device))


def resolve_device(device: str) -> torch.device:
    """`device`, or the CPU with a warning when CUDA is asked for and missing."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        logger.warning("SNAC: device %r requested but CUDA is not available; decoding on the CPU", device)
        return torch.device("cpu")
    return torch.device(device)


def remove_weight_norm(model: nn.Module) -> int:
    """Fold weight norm into plain weights in every module (it only costs time at inference).

    Handles both the parametrization API (snac >= 1.2) and the older hook API.
    Returns how many modules were changed.
    """
    from torch.nn.utils import parametrize

    changed = 0
    for module in model.modules():
        if parametrize.is_parametrized(module):
            for name in list(module.parametrizations.keys()):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
            changed += 1
        elif hasattr(module, "weight_g") and hasattr(module, "weight_v"):
            torch.nn.utils.remove_weight_norm(module)
            changed += 1
    return changed


# --------------------------------------------------------------------------- noise


class _NoiseState(threading.local):
    """Per-model decode-call state shared by its noise modules: each window's start, in latent steps.

    Thread-local, so several batcher workers can decode with one model at once.
    """

    def __init__(self) -> None:
        self.start_steps: tuple[int, ...] | None = None


class PositionalNoise(nn.Module):
    """SNAC's NoiseBlock with noise read from a fixed table at absolute positions.

    Keeps the block's `linear` (same state-dict keys). `samples_per_step` is this
    block's resolution in samples per latent step (4 latent steps per frame).
    """

    def __init__(self, linear: nn.Module, samples_per_step: int, table: torch.Tensor, state: _NoiseState):
        super().__init__()
        self.linear = linear
        self.samples_per_step = samples_per_step
        self.register_buffer("table", table, persistent=False)
        self._state = state

    def _noise(self, start: int, length: int) -> torch.Tensor:
        size = self.table.numel()
        begin = (start * self.samples_per_step) % size
        if begin + length <= size:
            return self.table[begin : begin + length]  # a view: no gather
        index = (begin + torch.arange(length, device=self.table.device)) % size
        return self.table[index]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, length = x.shape
        starts = self._state.start_steps or (0,) * batch
        if len(starts) != batch:
            raise RuntimeError(f"noise offsets for {len(starts)} windows, batch has {batch}")
        noise = torch.stack([self._noise(start, length) for start in starts]).unsqueeze(1).to(x.dtype)
        return torch.addcmul(x, noise, self.linear(x))


class _NoNoise(nn.Module):
    def __init__(self, linear: nn.Module):
        super().__init__()
        self.linear = linear  # kept so state dicts still match

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _noise_block(
    mode: str, linear: nn.Module, samples_per_step: int, seed: int, table_size: int, state: _NoiseState
) -> nn.Module:
    if mode == "off":
        return _NoNoise(linear)
    if mode == "random":
        from snac.layers import NoiseBlock

        block = NoiseBlock(1)
        block.linear = linear
        return block
    table = torch.randn(table_size, generator=torch.Generator().manual_seed(seed))
    device = next(linear.parameters()).device
    return PositionalNoise(linear, samples_per_step, table.to(device), state)


def set_noise_mode(model: nn.Module, mode: str, *, seed: int = 0, table_size: int = 1 << 20) -> None:
    """Replace SNAC's decoder noise blocks according to `mode` (see the module docstring)."""
    if mode not in NOISE_MODES:
        raise ValueError(f"noise mode {mode!r} not in {NOISE_MODES}")
    decoder = getattr(model, "decoder", None)
    if decoder is None:
        return
    state = _NoiseState()
    model._rvg_noise_state = state  # type: ignore[assignment]
    samples_per_step = 1
    stage = 0
    for block in decoder.model:
        inner = getattr(block, "block", None)
        if inner is None:
            continue
        for i, layer in enumerate(inner):
            if isinstance(layer, nn.ConvTranspose1d):
                samples_per_step *= int(layer.stride[0])
            if type(layer).__name__ in ("NoiseBlock", "PositionalNoise", "_NoNoise"):
                inner[i] = _noise_block(
                    mode, layer.linear, samples_per_step, seed * 1000 + stage, table_size, state
                )
                stage += 1


# --------------------------------------------------------------------------- decoding


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def decode_windows(model: nn.Module, windows: Sequence[tuple[Levels, int]]) -> list[np.ndarray]:
    """Decode windows of equal frame count in one SNAC call; each (levels, start_frame) gets its own audio.

    `start_frame` is the window's absolute position in its stream, for positional noise.
    """
    if not windows:
        return []
    frames = {levels[0].shape[0] for levels, _ in windows}
    if len(frames) != 1:
        raise ValueError(f"windows of different lengths in one batch: {sorted(frames)}")
    device = _model_device(model)
    codes = [
        torch.as_tensor(np.stack([levels[k] for levels, _ in windows]), dtype=torch.long, device=device)
        for k in range(3)
    ]
    state: _NoiseState | None = getattr(model, "_rvg_noise_state", None)
    with torch.inference_mode():
        if state is not None:
            state.start_steps = tuple(4 * start for _, start in windows)
        try:
            audio = model.decode(codes)
        finally:
            if state is not None:
                state.start_steps = None
    out = audio[:, 0, :].float().cpu().numpy()
    return [np.ascontiguousarray(row) for row in out]


def decode_all(model: nn.Module, frames: Sequence[Sequence[int]]) -> np.ndarray:
    """The whole sequence in one call: the reference a stream's output is compared against."""
    return decode_windows(model, [(frames_to_levels(frames), 0)])[0]


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


# --------------------------------------------------------------------------- batching


@dataclass
class _Request:
    levels: Levels
    start_frame: int
    future: asyncio.Future[np.ndarray]
    loop: asyncio.AbstractEventLoop
    submitted: float


@dataclass
class BatcherStats:
    batches: int = 0
    windows: int = 0
    frames: int = 0
    skipped_cancelled: int = 0
    errors: int = 0
    busy_s: float = 0.0

    @property
    def mean_batch(self) -> float:
        return self.windows / self.batches if self.batches else 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "batches": self.batches,
            "windows": self.windows,
            "frames": self.frames,
            "skipped_cancelled": self.skipped_cancelled,
            "errors": self.errors,
            "busy_s": round(self.busy_s, 4),
            "mean_batch": round(self.mean_batch, 3),
        }


_STOP = object()


def _resolve(
    future: asyncio.Future[np.ndarray], audio: np.ndarray | None, error: BaseException | None
) -> None:
    if future.done():  # cancelled while its batch was decoding
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(audio)  # type: ignore[arg-type]


class SnacBatcher:
    """One SNAC model shared by every session; worker threads decode pending windows in batches.

    A worker takes what is queued (waiting at most `max_wait_ms` after the first
    request for more, up to `max_batch` windows), groups it by window length,
    decodes each group in one call and resolves each caller's future with exactly
    its own audio. While a batch decodes, new requests queue up, so under load
    batches fill without any waiting.

    `torch_threads` is set on each worker thread (None leaves torch's default).
    One thread per worker, and `workers` for more cores, is the default because on
    CPUs that layout measured fastest (loadtest/bench_snac.py --sweep): conv calls
    of this size scale poorly across threads, and spinning OpenMP threads collapse
    when other work shares the cores. `max_batch` defaults to 1 on CPUs: there a
    decode is compute-bound, per-frame cost only grows with the batch (+4% at 2
    windows, +20% at 8, x2 at 16 as activations overflow the caches), so CPUs scale
    with `workers`, not batches. On CUDA it defaults to 16: a decode call costs
    about the same for one window or many.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        max_batch: int | None = None,
        max_wait_ms: float = 2.0,
        workers: int = 1,
        torch_threads: int | None = 1,
        name: str = "snac-batcher",
    ) -> None:
        if max_batch is None:
            max_batch = 16 if _model_device(model).type == "cuda" else 1
        if max_batch < 1 or workers < 1:
            raise ValueError("max_batch and workers must be at least 1")
        self.model = model
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self.workers = workers
        self.torch_threads = torch_threads
        self.name = name
        self.stats = BatcherStats()
        self._stats_lock = threading.Lock()
        self._queue: queue.Queue[Any] = queue.Queue()
        self._threads: list[threading.Thread] = []

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def start(self) -> None:
        if self._threads:
            return
        for i in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"{self.name}-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    async def stop(self) -> None:
        """Stop the workers after the batches in progress; requests still queued fail with CancelledError."""
        threads, self._threads = self._threads, []
        if not threads:
            return
        for _ in threads:
            self._queue.put(_STOP)
        for thread in threads:
            await asyncio.to_thread(thread.join)
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Request):
                item.loop.call_soon_threadsafe(item.future.cancel)

    async def decode(self, levels: Levels, start_frame: int = 0) -> np.ndarray:
        """Audio for one window (`levels` of F frames starting at `start_frame` of its stream): F * 2048 samples."""
        if not self.running:
            raise RuntimeError("SnacBatcher is not running: call start()")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._queue.put(_Request(levels, start_frame, future, loop, time.perf_counter()))
        return await future

    # -- worker thread

    def _collect(self) -> list[_Request] | None:
        first = self._queue.get()
        if first is _STOP:
            return None
        batch = [first]
        deadline = time.perf_counter() + self.max_wait_s
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if item is _STOP:
                self._queue.put(_STOP)  # finish this batch, then stop
                break
            batch.append(item)
        return batch

    def _work(self) -> None:
        if self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        while True:
            batch = self._collect()
            if batch is None:
                return
            groups: dict[int, list[_Request]] = {}
            for request in batch:
                if request.future.cancelled():
                    with self._stats_lock:
                        self.stats.skipped_cancelled += 1
                    continue
                groups.setdefault(request.levels[0].shape[0], []).append(request)
            for frames, group in groups.items():
                self._decode_group(frames, group)

    def _decode_group(self, frames: int, group: list[_Request]) -> None:
        started = time.perf_counter()
        try:
            audio = decode_windows(self.model, [(r.levels, r.start_frame) for r in group])
        except Exception as exc:  # one bad batch must not kill the shared worker
            logger.exception("SNAC batch of %d windows failed", len(group))
            with self._stats_lock:
                self.stats.errors += 1
                self.stats.busy_s += time.perf_counter() - started
            for r in group:
                r.loop.call_soon_threadsafe(_resolve, r.future, None, exc)
            return
        with self._stats_lock:
            self.stats.busy_s += time.perf_counter() - started
            self.stats.batches += 1
            self.stats.windows += len(group)
            self.stats.frames += frames * len(group)
        for r, samples in zip(group, audio, strict=True):
            r.loop.call_soon_threadsafe(_resolve, r.future, samples, None)
