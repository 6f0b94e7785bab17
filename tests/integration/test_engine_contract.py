"""The engine contract, run against every registered engine: a new engine gets it by registering.

Each engine is built from the registry with its own small test settings (`CONTRACT_SETTINGS`; an
engine that starts on its defaults needs none) and held to what the protocol and its own
`EngineInfo` promise: float32 mono audio at the declared rate, `ready` only between `start` and
`stop`, stats for every job, cancellation that stops work within `CANCEL_BOUND_S`, a clear error for
a bad voice or a speed it cannot honour, admission in deadline order, and the capabilities it
declares. Engine-specific behaviour stays in each engine's own tests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pytest

from realtime.control.settings import load_settings
from realtime.engines.base import (
    Engine,
    Granularity,
    SynthesisJob,
    UnknownVoiceError,
    UnsupportedSpeedError,
    WordTimings,
)
from realtime.engines.registry import ENGINES, build_engine

CANCEL_BOUND_S = 2.0
"""A cancelled job's stream ends, and its slot is free again, this soon, or within three times its
first chunk's wait on a machine so loaded that one unit of work takes longer (a Piper run: ~0.3 s)."""
PARAGRAPH = (
    "The lighthouse keeper climbed the stairs at dusk, counting each step as his father had. "
    "Below him the harbour filled with small boats coming home, their lanterns swaying. "
    "He trimmed the wick, wound the clockwork, and watched the beam sweep out across the water."
)
TWO_SENTENCES = "The first sentence is here. And the second one follows it."
LONG = "A long story that goes on and on, with many words in it; " * 12


def orpheus_settings(folder: Path) -> dict[str, Any]:
    """Tiny random models (tests/gguf_models.py, tests/snac_models.py). The random model almost never
    ends a sequence, so every job is `max_tokens` long: 300 frames (25.6 s), a plausible length for
    `PARAGRAPH` and long enough for jobs to still be running while a test queues more behind them."""
    from tests.gguf_models import write_tiny_orpheus_gguf
    from tests.snac_models import tiny_snac, write_checkpoint

    write_checkpoint(tiny_snac(seed=3), folder / "snac")
    return {
        "model": str(write_tiny_orpheus_gguf(folder / "tiny.gguf", weight_type="f32")),
        "snac_model": str(folder / "snac"), "max_tokens": 2100, "max_sequences": 2, "n_ctx": 8192,
        "n_threads": 1, "seed": 7, "kv_cache_type": "f32", "flash_attn": False, "decoder_noise": "off",
    }  # fmt: skip


def http_settings(_folder: Path) -> dict[str, Any]:
    """Another gateway (in this process) serving the tone engine: a fault-free upstream whose requests
    last long enough for the cancellation and admission tests. Two slots, so two jobs block them."""
    from tests.http_upstreams import tone_gateway

    return {"urls": [f"{tone_gateway().url}/v1"], "max_concurrency": 2, "audio_per_char_s": 0.06}


CONTRACT_SETTINGS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "piper": lambda _folder: {"workers": 2, "arena_trim_idle_s": 0},  # no trim taking a slot mid-test
    "orpheus": orpheus_settings,
    "http": http_settings,
    # Two workers of one thread: the admission test needs a second slot to block.
    # Model calls of at most 64 phonemes: the gateway's segments are that short, and the long texts
    # here would otherwise make one 510-phoneme call (~10 s on 2 cores) every cancel's latency.
    "kokoro": lambda _folder: {
        "workers": 2,
        "threads_per_worker": 1,
        "arena_trim_idle_s": 0,
        "max_phonemes_per_call": 64,
    },  # fmt: skip
}
"""Per engine, its settings section for these tests (files it needs go in `folder`); default: {}."""


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop for the module: an engine is started once and used by every test."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def run(loop: asyncio.AbstractEventLoop, coro: Any, timeout: float = 120.0) -> Any:
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


def new_engine(name: str, folder: Path) -> Engine:
    section = CONTRACT_SETTINGS.get(name, lambda _folder: {})(folder)
    return build_engine(name, load_settings(engines=[name], **{name: section}))


@pytest.fixture(scope="module", params=sorted(ENGINES))
def engine(
    request: pytest.FixtureRequest, loop: asyncio.AbstractEventLoop, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    engine = new_engine(request.param, tmp_path_factory.mktemp(request.param))
    run(loop, engine.start())
    yield engine
    run(loop, engine.stop())


async def collect(engine: Engine, job: SynthesisJob) -> list[Any]:
    return [chunk async for chunk in engine.synthesize(job)]


async def until(condition: Callable[[], bool], timeout: float = CANCEL_BOUND_S) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


async def first_chunk_bound(stream: AsyncIterator[np.ndarray]) -> float:
    """Wait for `stream`'s first chunk; the time it took scales the cancellation bound."""
    began = time.monotonic()
    await stream.__anext__()
    return max(CANCEL_BOUND_S, 3 * (time.monotonic() - began))


def job(engine: Engine, text: str, **fields: Any) -> SynthesisJob:
    return SynthesisJob(text, fields.pop("voice", engine.info.default_voice), **fields)


# -- what an engine declares ---------------------------------------------------------------------


def test_info_is_well_formed(engine: Engine) -> None:
    info, caps, hints = engine.info, engine.info.capabilities, engine.info.hints
    assert 8000 <= info.sample_rate <= 48000
    assert info.voices and info.has_voice(info.default_voice)
    assert len({v.id for v in info.voices}) == len(info.voices), "voice ids are unique"
    assert caps.streaming in get_args(Granularity)
    assert caps.device
    assert hints.nominal_speed > 0 and hints.audio_per_char_s > 0 and hints.audio_per_segment_s >= 0


def test_reserved_capabilities_wait_for_the_protocol(engine: Engine) -> None:
    """Cloning has no way through `SynthesisJob` and the audio stream yet: an engine that declares it
    must extend the protocol, and this test, first (docs/ADDING_AN_ENGINE.md)."""
    assert not engine.info.capabilities.voice_cloning


def test_word_timings_are_declared_or_absent(engine: Engine, loop: asyncio.AbstractEventLoop) -> None:
    """Asked for timings, an engine that declares them times every spoken word of the text, in order,
    within its audio, each before the audio that speaks it ends; any other yields audio only."""
    items = run(loop, collect(engine, job(engine, TWO_SENTENCES, timestamps=True)))
    audio_before: list[int] = []
    samples = 0
    for item in items:
        if isinstance(item, np.ndarray):
            samples += item.size
        else:
            audio_before.append(samples)
    timings = [i for i in items if isinstance(i, WordTimings)]
    if not engine.info.capabilities.timestamps:
        assert not timings, "an engine that does not declare timestamps invented some"
        return
    words = [w for t in timings for w in t.words]
    assert [w.word for w in words] == TWO_SENTENCES.split()
    duration = samples / engine.info.sample_rate
    previous_end = 0.0
    for w in words:
        assert TWO_SENTENCES[w.char_start : w.char_end] == w.word
        assert previous_end - 1e-6 <= w.start_s <= w.end_s <= duration + 1e-6, (w, previous_end, duration)
        previous_end = w.end_s
    assert words[-1].end_s > duration - 0.1, "the last word ends where the audio does"
    assert audio_before[0] == 0, "timings come before the audio they describe"


# -- audio ---------------------------------------------------------------------------------------


def test_audio_is_float32_mono_at_the_declared_rate(engine: Engine, loop: asyncio.AbstractEventLoop) -> None:
    chunks = run(loop, collect(engine, job(engine, PARAGRAPH)))
    assert chunks and all(isinstance(c, np.ndarray) for c in chunks)
    assert all(c.dtype == np.float32 and c.ndim == 1 for c in chunks)
    audio = np.concatenate(chunks)
    assert np.isfinite(audio).all() and np.abs(audio).max() <= 1.0 + 1e-6
    assert np.abs(audio).max() > 1e-3, "it said something"
    # At the declared rate the audio lasts about what the engine's own hints predict; a wrong rate
    # (or wrong hints, which mislead the scheduler) shows as a large ratio.
    hints = engine.info.hints
    predicted = hints.audio_per_segment_s + hints.audio_per_char_s * len(PARAGRAPH)
    ratio = audio.size / engine.info.sample_rate / predicted
    assert 1 / 3 < ratio < 3, (
        f"{audio.size} samples at {engine.info.sample_rate} Hz vs {predicted:.1f} s predicted"
    )


def test_streaming_granularity_is_honoured(engine: Engine, loop: asyncio.AbstractEventLoop) -> None:
    """Anything finer than a segment streams two sentences in more than one piece."""
    chunks = run(loop, collect(engine, job(engine, TWO_SENTENCES)))
    if engine.info.capabilities.streaming != "segment":
        assert len(chunks) >= 2, f"{engine.info.capabilities.streaming!r} streaming sent one piece"


def test_stats_are_recorded(engine: Engine, loop: asyncio.AbstractEventLoop) -> None:
    stats = engine.stats
    before = (stats.jobs_started, stats.jobs_completed, stats.chars, stats.audio_seconds, stats.busy_seconds)
    chunks = run(loop, collect(engine, job(engine, "Counting this one.")))
    samples = sum(c.size for c in chunks)
    assert stats.jobs_started == before[0] + 1 and stats.jobs_completed == before[1] + 1
    assert stats.chars == before[2] + len("Counting this one.")
    assert stats.audio_seconds - before[3] == pytest.approx(samples / engine.info.sample_rate, abs=1e-6)
    assert stats.busy_seconds > before[4] and stats.recent_speed is not None
    assert run(loop, until(lambda: engine.load == 0 and engine.queue_depth == 0))


# -- refusals ------------------------------------------------------------------------------------


def test_a_bad_voice_is_a_clear_error_before_any_work(
    engine: Engine, loop: asyncio.AbstractEventLoop
) -> None:
    started = engine.stats.jobs_started
    with pytest.raises(UnknownVoiceError, match="no-such-voice") as error:
        run(loop, collect(engine, job(engine, "Hello.", voice="no-such-voice")))
    assert error.value.param == "voice" and engine.stats.jobs_started == started


def test_speed_is_honoured_or_refused(engine: Engine, loop: asyncio.AbstractEventLoop) -> None:
    if not engine.info.capabilities.speed:
        with pytest.raises(UnsupportedSpeedError, match=f"engine '{engine.info.name}' cannot change speed"):
            run(loop, collect(engine, job(engine, "Hello.", speed=2.0)))
        return
    normal = sum(c.size for c in run(loop, collect(engine, job(engine, TWO_SENTENCES))))
    fast = sum(c.size for c in run(loop, collect(engine, job(engine, TWO_SENTENCES, speed=2.0))))
    assert fast < 0.75 * normal, f"speed 2 gave {fast} samples against {normal} at speed 1"


# -- lifecycle and cancellation ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_ready_only_between_start_and_stop(
    name: str, loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    engine = new_engine(name, tmp_path)
    assert not engine.ready, "ready before start"
    run(loop, engine.start())
    assert engine.ready
    run(loop, engine.stop())
    assert not engine.ready, "ready after stop"


def test_cancel_stops_work_within_a_bound(engine: Engine, loop: asyncio.AbstractEventLoop) -> None:
    async def scenario() -> None:
        cancelled = engine.stats.jobs_cancelled
        long = job(engine, LONG)
        stream = engine.synthesize(long)
        bound = await first_chunk_bound(stream)
        long.cancel.cancel()
        stopped = time.monotonic()
        async for _ in stream:  # what was already made may still come, then the stream ends
            pass
        assert time.monotonic() - stopped < bound
        assert await until(lambda: engine.load == 0, bound), "the job still holds its slot"
        assert await until(lambda: engine.stats.jobs_cancelled == cancelled + 1, bound)

    run(loop, scenario())


def test_a_consumer_that_goes_away_frees_the_engine(engine: Engine, loop: asyncio.AbstractEventLoop) -> None:
    async def scenario() -> None:
        cancelled = engine.stats.jobs_cancelled
        stream = engine.synthesize(job(engine, LONG))
        bound = await first_chunk_bound(stream)
        await stream.aclose()  # as when a session's task is cancelled: barge-in, a client gone
        assert await until(lambda: engine.load == 0, bound), "the abandoned job still holds its slot"
        assert await until(lambda: engine.stats.jobs_cancelled == cancelled + 1, bound)

    run(loop, scenario())


# -- admission -----------------------------------------------------------------------------------


def test_jobs_wait_for_a_slot_in_deadline_order(engine: Engine, loop: asyncio.AbstractEventLoop) -> None:
    """With every slot busy, a later-submitted job due sooner starts first (not first come, first
    served), whether the engine runs threads or is async."""

    async def consume(stream: AsyncIterator[np.ndarray], name: str, first_audio: list[str]) -> None:
        async for _ in stream:
            if name not in first_audio:
                first_audio.append(name)

    async def scenario() -> None:
        first_audio: list[str] = []
        jobs: list[SynthesisJob] = []
        tasks: list[asyncio.Task[None]] = []

        def submit(name: str, text: str, deadline: float = 0.0) -> SynthesisJob:
            jobs.append(job(engine, text, deadline=deadline))
            tasks.append(asyncio.create_task(consume(engine.synthesize(jobs[-1]), name, first_audio)))
            return jobs[-1]

        try:
            # Blockers far longer than the test needs: none may end before the waiters queue behind it.
            first = submit("blocker", LONG * 4)
            assert await until(lambda: engine.load > 0)
            assert engine.load * engine.capacity == pytest.approx(1.0), "one job of capacity"
            for _ in range(engine.capacity - 1):  # load counts jobs running or waiting per slot
                submit("blocker", LONG * 4)
            assert await until(lambda: engine.load == pytest.approx(1.0) and "blocker" in first_audio, 30)
            submit("late", "Due later.", deadline=1000.0)  # comes first,
            submit("early", "Due sooner.", deadline=1.0)  # but is due later than this one
            assert await until(lambda: engine.queue_depth >= 2), "two jobs wait while every slot is busy"
            assert engine.load * engine.capacity == pytest.approx(len(jobs))
            first.cancel.cancel()  # one slot frees up; the other blockers still hold theirs
            assert await until(lambda: "early" in first_audio or "late" in first_audio, 30)
            assert "early" in first_audio and "late" not in first_audio, first_audio
        finally:
            for j in jobs:
                j.cancel.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        assert await until(lambda: engine.load == 0)

    run(loop, scenario())
