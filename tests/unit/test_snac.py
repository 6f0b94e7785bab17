"""The Orpheus SNAC decoder: checkpoint loading, streaming windows and seams, batching, window planning.

Covers `snac_model`, `snac_stream` and `snac_batcher` together (they share the
model fixtures), all on tiny random SNAC models (tests/snac_models.py) with the real 24 kHz strides.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch  # noqa: E402
from torch import nn  # noqa: E402

from realtime.engines.orpheus.codes import SAMPLES_PER_FRAME, frames_to_levels
from realtime.engines.orpheus.snac_batcher import SnacBatcher
from realtime.engines.orpheus.snac_model import (
    decode_all,
    decode_windows,
    load_snac,
    remove_weight_norm,
    set_noise_mode,
)
from realtime.engines.orpheus.snac_stream import SnacStream, WindowPlanner, decode_stream_offline
from tests.snac_models import TINY_CONFIG, random_frames, tiny_snac, write_checkpoint

F = SAMPLES_PER_FRAME
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def snr_db(audio: np.ndarray, reference: np.ndarray) -> float:
    error = audio - reference
    return float(20 * np.log10(np.sqrt(np.mean(error**2)) / np.std(reference)))


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from threads, and spinning OpenMP threads hurt on a shared 2-core box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_checkpoint(tiny_snac(0), tmp_path_factory.mktemp("snac"))


@pytest.fixture(scope="module")
def model(checkpoint: Path) -> nn.Module:
    return load_snac(checkpoint)


def fixed(frames: int, **kwargs: Any) -> SnacStream:
    """A stream that always decodes `frames` new frames at a time."""
    return SnacStream(WindowPlanner(min_frames=frames, max_frames=frames), **kwargs)


# --------------------------------------------------------------------------- loading


@pytest.mark.parametrize("legacy", [False, True], ids=["parametrized", "weight_g_v"])
def test_checkpoint_decodes_like_its_source(tmp_path: Path, legacy: bool) -> None:
    source = tiny_snac(3)
    directory = write_checkpoint(source, tmp_path / "ckpt", legacy=legacy)
    set_noise_mode(source, "positional")
    frames = random_frames(5, seed=1)
    expected = decode_all(source, frames)  # weight norm still live in the source
    loaded = load_snac(directory)
    np.testing.assert_allclose(decode_all(loaded, frames), expected, atol=2e-5, rtol=0)
    # The .bin path with config.json beside it works too.
    loaded_file = load_snac(directory / "pytorch_model.bin")
    np.testing.assert_allclose(decode_all(loaded_file, frames), expected, atol=2e-5, rtol=0)


def test_weight_norm_is_removed(model: nn.Module) -> None:
    from torch.nn.utils import parametrize

    assert not any(parametrize.is_parametrized(m) for m in model.modules())
    names = [name for name, _ in model.named_parameters()]
    assert not [n for n in names if "weight_g" in n or "weight_v" in n or "original" in n]
    assert not model.training
    assert remove_weight_norm(model) == 0  # nothing left to fold


def test_random_init_without_path_and_cuda_fallback(caplog: pytest.LogCaptureFixture) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA present: the fallback cannot happen")
    with caplog.at_level(logging.WARNING):
        model = load_snac(None, config=TINY_CONFIG, device="cuda")
    assert next(model.parameters()).device.type == "cpu"
    assert "CUDA is not available" in caplog.text
    assert isinstance(model.encoder, nn.Identity)  # decoding never needs the encoder
    assert decode_all(model, random_frames(2)).shape == (2 * F,)


def test_load_rejects_missing_paths_and_other_layouts(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_snac(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="24 kHz layout"):
        load_snac(None, config={**TINY_CONFIG, "vq_strides": [8, 4, 2, 1]})


def test_noise_modes(checkpoint: Path) -> None:
    frames = random_frames(3, seed=2)
    positional = load_snac(checkpoint)
    np.testing.assert_array_equal(decode_all(positional, frames), decode_all(positional, frames))
    off = load_snac(checkpoint, noise="off")
    np.testing.assert_array_equal(decode_all(off, frames), decode_all(off, frames))
    assert not np.allclose(decode_all(off, frames), decode_all(positional, frames))
    random = load_snac(checkpoint, noise="random")  # SNAC's own: fresh noise every call
    assert not np.allclose(decode_all(random, frames), decode_all(random, frames))
    with pytest.raises(ValueError):
        load_snac(checkpoint, noise="loud")


# --------------------------------------------------------------------------- batched decoding


def test_batched_windows_equal_each_decoded_alone(model: nn.Module) -> None:
    windows = [
        (frames_to_levels(random_frames(4, seed=s)), start) for s, start in [(1, 0), (2, 7), (3, 0), (4, 30)]
    ]
    together = decode_windows(model, windows)
    for window, audio in zip(windows, together, strict=True):
        alone = decode_windows(model, [window])[0]
        np.testing.assert_allclose(audio, alone, atol=1e-5, rtol=0)
    with pytest.raises(ValueError):
        decode_windows(model, [windows[0], (frames_to_levels(random_frames(3)), 0)])


def test_positional_noise_wraps_around_its_table(checkpoint: Path) -> None:
    model = load_snac(checkpoint)
    set_noise_mode(model, "positional", table_size=5000)  # windows here cross the table's end
    windows = [
        (frames_to_levels(random_frames(2, seed=s)), start) for s, start in [(1, 0), (2, 3), (3, 1000)]
    ]
    together = decode_windows(model, windows)
    for window, audio in zip(windows, together, strict=True):
        np.testing.assert_allclose(audio, decode_windows(model, [window])[0], atol=1e-5, rtol=0)
        assert np.all(np.isfinite(audio))


def test_window_audio_does_not_depend_on_where_it_is_cut(model: nn.Module) -> None:
    """Positional noise: a window deep inside a sequence matches the whole decode there (context aside)."""
    frames = random_frames(16, seed=5)
    whole = decode_all(model, frames)
    window = decode_windows(model, [(frames_to_levels(frames[4:14]), 4)])[0]
    # 3 frames in from both edges the receptive field no longer reaches the cut.
    np.testing.assert_allclose(window[3 * F : 7 * F], whole[7 * F : 11 * F], atol=1e-4, rtol=0)


# --------------------------------------------------------------------------- streaming


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 13])
@pytest.mark.parametrize("plan", [1, 3, 8, None])
def test_stream_length_is_exact(model: nn.Module, count: int, plan: int | None) -> None:
    stream = SnacStream() if plan is None else fixed(plan)
    chunks = decode_stream_offline(model, random_frames(count, seed=count), stream)
    assert sum(c.size for c in chunks) == count * F
    assert all(c.dtype == np.float32 for c in chunks)
    assert stream.finished and stream.emitted == count * F


def test_first_chunk_after_two_frames(model: nn.Module) -> None:
    stream = fixed(4)
    frames = random_frames(2)
    stream.push(frames[0])
    assert not stream.due(10.0)
    stream.push(frames[1])
    assert stream.due(0.0)
    window = stream.take_window()
    assert window is not None and (window.start_frame, window.end_frame) == (0, 2)
    chunk = stream.complete(window, decode_windows(model, [(window.levels, 0)])[0])
    assert chunk.size == 2 * F - stream.min_lookahead == 3072


@pytest.mark.parametrize(
    ("buffered_s", "snr_bound", "later_bound"),
    # Measured on this model (4 seeds x plans 1/3/8/adaptive, 24 frames, signal std ~0.06):
    # healthy buffer (3072-sample lookahead): -28.5..-30.6 dB, max |error| after 3 frames <= 0.009;
    # starved buffer (1024-sample lookahead): -17.2..-26.1 dB, <= 0.121.
    # Everywhere the first chunk (1024-sample lookahead) reaches 0.121 at most.
    [(1.0, -25.0, 0.02), (0.0, -14.0, 0.17)],
    ids=["healthy", "starved"],
)
def test_stream_matches_whole_decode_within_measured_seam_error(
    model: nn.Module, buffered_s: float, snr_bound: float, later_bound: float
) -> None:
    for seed in range(2):
        frames = random_frames(24, seed=seed)
        whole = decode_all(model, frames)
        for plan in (1, 3, 8):
            audio = np.concatenate(decode_stream_offline(model, frames, fixed(plan), buffered_s=buffered_s))
            assert audio.shape == whole.shape
            error = np.abs(audio - whole)
            assert snr_db(audio, whole) < snr_bound
            assert np.max(error) < 0.17
            assert np.max(error[3 * F :]) < later_bound


def test_stream_is_exact_with_context_beyond_the_receptive_field(model: nn.Module) -> None:
    """With 3 frames of context both ways every emitted sample is final: checks the seam bookkeeping itself."""
    frames = random_frames(20, seed=9)
    whole = decode_all(model, frames)
    for plan in (1, 2, 5):
        stream = SnacStream(
            WindowPlanner(first_frames=4, min_frames=plan, max_frames=plan),
            left_context=3 * F,
            lookahead=3 * F,
            min_lookahead=3 * F,
            crossfade=512,
        )
        audio = np.concatenate(decode_stream_offline(model, frames, stream))
        np.testing.assert_allclose(audio, whole, atol=2e-4, rtol=0)


def test_single_final_window_is_the_whole_decode(model: nn.Module) -> None:
    frames = random_frames(7, seed=4)
    stream = SnacStream(WindowPlanner(first_frames=100))
    chunks = decode_stream_offline(model, frames, stream)
    assert len(chunks) == 1
    np.testing.assert_allclose(chunks[0], decode_all(model, frames), atol=1e-6, rtol=0)


def test_stream_rejects_misuse(model: nn.Module) -> None:
    stream = fixed(1)
    with pytest.raises(ValueError):
        stream.push([1, 2, 3])
    for frame in random_frames(2):
        stream.push(frame)
    window = stream.take_window()
    assert window is not None
    with pytest.raises(RuntimeError):
        stream.take_window()
    with pytest.raises(ValueError):
        stream.complete(window, np.zeros(F, dtype=np.float32))
    with pytest.raises(ValueError):
        SnacStream(crossfade=4096)


# --------------------------------------------------------------------------- batcher


def test_batcher_streams_equal_streams_decoded_alone(model: nn.Module) -> None:
    """Four streams with different plans share one batcher; each gets exactly its own audio."""
    sequences = [random_frames(10, seed=20 + i) for i in range(4)]
    plans = [1, 1, 2, 3]
    expected = [
        np.concatenate(decode_stream_offline(model, f, fixed(p)))
        for f, p in zip(sequences, plans, strict=True)
    ]

    async def main() -> tuple[list[np.ndarray], dict[str, float]]:
        batcher = SnacBatcher(model, max_batch=8, max_wait_ms=20)
        batcher.start()

        async def one(frames: list[list[int]], plan: int) -> np.ndarray:
            stream = fixed(plan)
            chunks = [await stream.feed(frame, batcher, buffered_s=1.0) for frame in frames]
            chunks.append(await stream.finish(batcher))
            return np.concatenate([c for c in chunks if c is not None])

        try:
            outputs = await asyncio.gather(*(one(f, p) for f, p in zip(sequences, plans, strict=True)))
        finally:
            await batcher.stop()
        return outputs, batcher.stats.as_dict()

    outputs, stats = run(main())
    for audio, want in zip(outputs, expected, strict=True):
        np.testing.assert_allclose(audio, want, atol=1e-5, rtol=0)
    assert stats["mean_batch"] > 1.5  # lockstep streams with equal windows were decoded together
    assert stats["errors"] == 0 and stats["busy_s"] > 0


class GatedModel(nn.Module):
    """Wraps a model so a test can hold a batch inside its decode call."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self._rvg_noise_state = inner._rvg_noise_state
        self.entered = threading.Event()
        self.release = threading.Event()
        self.batch_sizes: list[int] = []

    def decode(self, codes: list[torch.Tensor]) -> torch.Tensor:
        self.batch_sizes.append(codes[0].shape[0])
        self.entered.set()
        assert self.release.wait(10)
        return self.inner.decode(codes)


def test_cancelling_one_request_does_not_break_the_batch(model: nn.Module) -> None:
    gated = GatedModel(model)
    windows = [frames_to_levels(random_frames(3, seed=s)) for s in range(4)]
    expected = [decode_windows(model, [(w, 0)])[0] for w in windows]

    async def main() -> None:
        batcher = SnacBatcher(gated, max_batch=8, max_wait_ms=50)
        batcher.start()
        tasks = [asyncio.create_task(batcher.decode(w)) for w in windows[:3]]
        await asyncio.to_thread(gated.entered.wait, 10)
        assert gated.batch_sizes == [3]
        tasks[1].cancel()  # cancelled while its batch decodes
        late = asyncio.create_task(batcher.decode(windows[3]))
        await asyncio.sleep(0.01)
        late.cancel()  # cancelled before the worker picks it up: skipped, never decoded
        gated.release.set()
        results = await asyncio.gather(*tasks, late, return_exceptions=True)
        assert isinstance(results[1], asyncio.CancelledError)
        assert isinstance(results[3], asyncio.CancelledError)
        np.testing.assert_allclose(results[0], expected[0], atol=1e-5, rtol=0)
        np.testing.assert_allclose(results[2], expected[2], atol=1e-5, rtol=0)
        # The batcher still works afterwards.
        np.testing.assert_allclose(await batcher.decode(windows[3]), expected[3], atol=1e-5, rtol=0)
        await batcher.stop()
        assert batcher.stats.skipped_cancelled == 1
        assert gated.batch_sizes == [3, 1]
        with pytest.raises(RuntimeError):
            await batcher.decode(windows[0])

    run(main())


def test_cancelled_feed_leaves_the_stream_usable(model: nn.Module) -> None:
    gated = GatedModel(model)
    frames = random_frames(6, seed=11)

    async def main() -> np.ndarray:
        batcher = SnacBatcher(gated, max_wait_ms=0)
        batcher.start()
        stream = fixed(2)
        stream.push(frames[0])
        task = asyncio.create_task(stream.feed(frames[1], batcher))
        await asyncio.to_thread(gated.entered.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gated.release.set()
        chunks = [await stream.feed(f, batcher) for f in frames[2:]]
        chunks.append(await stream.finish(batcher))
        await batcher.stop()
        return np.concatenate([c for c in chunks if c is not None])

    audio = run(main())
    assert audio.size == len(frames) * F


def test_batcher_propagates_errors_and_survives() -> None:
    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(1))

        def decode(self, codes: list[torch.Tensor]) -> torch.Tensor:
            if codes[0].shape[1] == 1:
                raise RuntimeError("boom")
            return torch.zeros(codes[0].shape[0], 1, codes[0].shape[1] * F)

    async def main() -> None:
        batcher = SnacBatcher(Broken(), max_wait_ms=0)
        batcher.start()
        with pytest.raises(RuntimeError, match="boom"):
            await batcher.decode(frames_to_levels(random_frames(1)))
        assert (await batcher.decode(frames_to_levels(random_frames(2)))).shape == (2 * F,)
        await batcher.stop()
        assert batcher.stats.errors == 1

    run(main())


# --------------------------------------------------------------------------- planner


def test_planner_starts_small_and_measures() -> None:
    planner = WindowPlanner()
    assert planner.plan(buffered_s=5.0) == 1  # nothing measured yet: smallest step
    planner.observe(window_frames=4, seconds=0.2)
    assert planner.decode_s_per_frame == pytest.approx(0.05)
    planner.observe(window_frames=4, seconds=0.4)  # EWMA, alpha 0.3
    assert planner.decode_s_per_frame == pytest.approx(0.05 + 0.3 * (0.1 - 0.05))
    planner.observe_arrival(frames=10, seconds=0.5)
    assert planner.frame_interval_s == pytest.approx(0.08533 + 0.3 * (0.05 - 0.08533), abs=1e-4)


def test_planner_grows_with_the_buffer() -> None:
    planner = WindowPlanner(decode_s_per_frame=0.01, context_frames=2, safety_s=0.1, frame_interval_s=0.085)
    # fit = floor((buffered - 0.1 - 0.02) / 0.095); keep-up needs ceil(0.02 / 0.075) = 1
    assert planner.plan(0.0) == 1
    assert planner.plan(0.5) == 4
    assert planner.plan(1.0) == 9
    assert planner.plan(10.0) == 16  # max_frames
    planner.last_frames = 3
    assert planner.plan(1.0) == 6  # grows at most 2x per decode
    assert planner.plan(0.3) == 1  # shrinks at once


def test_planner_keeps_up_when_decoding_is_slow() -> None:
    # 0.05 s per decoded frame, 2 context frames, frames every 0.085 s: needs N >= 0.1 / 0.035 -> 3.
    planner = WindowPlanner(decode_s_per_frame=0.05, context_frames=2, frame_interval_s=0.085)
    assert planner.plan(0.0) == 3
    # Slower than real time at any size: go as big as allowed.
    planner.decode_s_per_frame = 0.2
    assert planner.plan(0.0) == 16


def test_planner_low_latency_caps_windows() -> None:
    planner = WindowPlanner(decode_s_per_frame=0.001, low_latency=True)
    assert planner.plan(10.0) == 2
    planner.low_latency = False
    assert planner.plan(10.0) == 16


def test_stream_sets_planner_context_from_its_geometry() -> None:
    assert SnacStream().planner.context_frames == 3
    assert SnacStream(lookahead=3 * F).planner.context_frames == 4


@pytest.mark.parametrize(
    ("buffered_s", "low_latency", "lookahead"),
    [(1.0, False, 3 * F // 2), (0.1, False, F // 2), (1.0, True, F // 2)],
    ids=["healthy", "starved", "low-latency"],
)
def test_lookahead_follows_the_buffer(
    model: nn.Module, buffered_s: float, low_latency: bool, lookahead: int
) -> None:
    stream = SnacStream(WindowPlanner(min_frames=2, max_frames=2, low_latency=low_latency))
    frames = random_frames(4)
    for frame in frames[:2]:
        stream.push(frame)
    assert stream.due(buffered_s)
    first = stream.take_window()
    assert first is not None and first.emit_to == 2 * F - F // 2  # the first call always holds back least
    stream.complete(first, decode_windows(model, [(first.levels, 0)])[0])
    for frame in frames[2:]:
        stream.push(frame)
    assert stream.due(buffered_s)
    window = stream.take_window()
    assert window is not None
    assert window.emit_to == max(first.emit_to, 4 * F - lookahead)
    # Left context: at least one frame before what was emitted so far.
    assert window.start_frame * F <= window.emit_from - F


def test_several_workers_share_one_model(model: nn.Module) -> None:
    """Two workers decode at once with one model; positional-noise offsets are per thread."""
    windows = [(frames_to_levels(random_frames(2 + s % 2, seed=s)), 5 * s) for s in range(8)]
    expected = [decode_windows(model, [w])[0] for w in windows]

    async def main() -> list[np.ndarray]:
        batcher = SnacBatcher(model, max_batch=2, max_wait_ms=0, workers=2)
        batcher.start()
        try:
            return await asyncio.gather(*(batcher.decode(levels, start) for levels, start in windows))
        finally:
            await batcher.stop()
            assert not batcher.running

    for audio, want in zip(run(main()), expected, strict=True):
        np.testing.assert_allclose(audio, want, atol=1e-5, rtol=0)


def test_batcher_defaults_follow_the_device(model: nn.Module) -> None:
    batcher = SnacBatcher(model)
    assert (batcher.max_batch, batcher.workers, batcher.torch_threads) == (1, 1, 1)  # CPU: scale with workers
    with pytest.raises(ValueError):
        SnacBatcher(model, workers=0)
