"""Failover inside a speech context, on scripted engines and a fake clock.

A primary engine that fails (at once, or after some of a segment's audio was heard), stalls,
or stops taking work; a fallback with another voice (so every sample can be traced to the
engine that made it) and, in one test, another sample rate. What the listener gets is
checked exactly: every segment's text once, in order, no audio lost or repeated but the
documented seam (session/failover.py), `degraded` on what the fallback said.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection
from typing import Any

import numpy as np
import pytest

from realtime.control.settings import PlannerSettings
from realtime.engines.base import (
    EngineCapabilities,
    EngineError,
    EngineInfo,
    EngineStats,
    SchedulingHints,
    SynthesisJob,
    Voice,
)
from realtime.engines.health import EngineHealth
from realtime.engines.tone.engine import tone_samples
from realtime.session.clock import FakeClock
from realtime.session.context import SpeechContext
from realtime.session.events import AudioOut, ContextDone, ContextError, SegmentDone, SegmentStarted
from realtime.session.failover import EngineLease, stall_deadline

RATE = 24000
MS_PER_CHAR = 10.0
CHUNK = int(RATE * 0.05)
FADE = int(RATE * 0.005)
"""The stitcher's crossfade: what it holds back of each segment, and what each seam costs."""


class Engine:
    """Instant tone audio in 50 ms chunks, one per event-loop step. From job `from_job` on, `mode`
    applies after `after` chunks: `fail` raises, `stall` waits until cancelled."""

    def __init__(self, name: str, voice: str, rate: int = RATE) -> None:
        self.info = EngineInfo(
            name=name, sample_rate=rate, voices=(Voice(voice, voice),), default_voice=voice,
            capabilities=EngineCapabilities(speed=True),
            hints=SchedulingHints(audio_per_char_s=MS_PER_CHAR / 1000.0, nominal_speed=100.0),
        )  # fmt: skip
        self.stats = EngineStats()
        self.ready, self.queue_depth, self.load, self.capacity = True, 0, 0.0, 1
        self.mode, self.after, self.from_job = "ok", 0, 0
        self.jobs: list[SynthesisJob] = []
        self.chunk = int(rate * 0.05)

    def synthesize(self, job: SynthesisJob) -> AsyncIterator[np.ndarray]:
        self.jobs.append(job)
        return self._run(job, len(self.jobs) - 1)

    async def _run(self, job: SynthesisJob, index: int) -> AsyncIterator[np.ndarray]:
        audio = tone_samples(job.text, job.voice, self.info.sample_rate, MS_PER_CHAR)
        faulty = self.mode != "ok" and index >= self.from_job
        for k, start in enumerate(range(0, audio.size, self.chunk)):
            if faulty and k == self.after:
                if self.mode == "fail":
                    raise EngineError("injected failure")
                await asyncio.Event().wait()
            if job.cancel.cancelled:
                return
            yield audio[start : start + self.chunk]
            await asyncio.sleep(0)


class Source:
    """The registry's part, by hand: which engines take work, each one's chain, what was asked."""

    def __init__(self, engines: dict[str, Engine], chains: dict[str, list[str]]) -> None:
        self.engines = engines
        self.chains = chains
        self.down: dict[str, str] = {}
        self.moves: list[tuple[str, str, str]] = []
        self.released: list[str] = []
        self.successes: list[str] = []

    def unusable(self, name: str) -> str | None:
        return self.down.get(name)

    def fallback(self, failed: str, *, voice: str, speed: float, skip: Collection[str]) -> EngineLease | None:
        for name in self.chains.get(failed, []):
            if name not in skip and name not in self.down:
                engine = self.engines[name]
                voice = voice if engine.info.has_voice(voice) else engine.info.default_voice
                return EngineLease(name, engine, voice, lambda name=name: self.released.append(name))  # type: ignore[misc]
        return None

    def failed_over(self, source: str, target: str, reason: str) -> None:
        self.moves.append((source, target, reason))

    def succeeded(self, name: str, started_at: float) -> None:
        self.successes.append(name)


def setup(
    *, fallback_rate: int = RATE, stall_s: float = 1.0, clock: FakeClock | None = None,
    planner: PlannerSettings | None = None,
) -> tuple[Engine, Engine, Source, SpeechContext]:  # fmt: skip
    primary, backup = Engine("primary", "mid"), Engine("backup", "high", fallback_rate)
    source = Source({"primary": primary, "backup": backup}, {"primary": ["backup"]})
    context = SpeechContext(
        primary, voice="mid", planner=planner or PlannerSettings(), engine_name="primary", source=source,
        release=lambda: source.released.append("primary"), stall_s=stall_s, clock=clock,
    )  # fmt: skip
    return primary, backup, source, context


async def collect(context: SpeechContext) -> list[Any]:
    return [e async for e in context.events()]


def audio_of(events: list[Any]) -> np.ndarray:
    return np.concatenate([e.samples for e in events if isinstance(e, AudioOut)])


def segments(events: list[Any]) -> list[SegmentStarted]:
    return [e for e in events if isinstance(e, SegmentStarted)]


TEXT = "Hello there, this sentence goes on for a while. And another one follows it to the end."


def spoken(texts: list[str], voice: str) -> np.ndarray:
    """What the stitcher makes of these segments in one voice: each seam's crossfade overlaps them."""
    out = np.zeros(0, np.float32)
    for text in texts:
        audio = tone_samples(text, voice, RATE, MS_PER_CHAR)
        if out.size:
            ramp = np.linspace(0.0, np.pi / 2, FADE, dtype=np.float32)
            seam = out[-FADE:] * np.cos(ramp) + audio[:FADE] * np.sin(ramp)
            out = np.concatenate([out[:-FADE], seam, audio[FADE:]])
        else:
            out = audio
    return out


def test_an_engine_that_fails_before_any_audio_hands_every_segment_whole_to_its_fallback() -> None:
    async def main() -> None:
        primary, backup, source, context = setup()
        primary.mode = "fail"
        context.append(TEXT)
        context.done()
        events = await collect(context)
        started = segments(events)
        assert " ".join(s.text for s in started) == TEXT, "every word once, in order"
        assert all(s.degraded for s in started), "announced with the first audio: already on the fallback"
        assert source.moves == [("primary", "backup", "error")], "one move, counted once"
        assert context.degraded and context.engine_name == "backup" and context.voice == "high"
        np.testing.assert_allclose(audio_of(events), spoken([s.text for s in started], "high"), atol=1e-6)
        assert isinstance(events[-1], ContextDone) and not events[-1].cancelled
        assert sorted(source.released) == ["backup", "primary"], "both leases are given back"
        assert source.successes and set(source.successes) == {"backup"}

    asyncio.run(main())


def test_a_failure_mid_segment_fades_out_what_was_heard_and_says_the_segment_again() -> None:
    async def main() -> None:
        primary, _, source, context = setup()
        primary.mode, primary.after = "fail", 2  # some of the first segment reaches the listener
        context.append(TEXT)
        context.done()
        events = await collect(context)
        started = segments(events)
        assert " ".join(s.text for s in started) == TEXT
        assert not started[0].degraded and all(s.degraded for s in started[1:])
        pieces = [e.samples for e in events if isinstance(e, AudioOut)]
        fade_at = next(i for i, p in enumerate(pieces) if p.size == FADE)  # the stitcher's held tail, faded
        heard = np.concatenate(pieces[:fade_at])
        first = tone_samples(started[0].text, "mid", RATE, MS_PER_CHAR)
        assert 0 < heard.size < first.size, "the primary died in the middle of the segment being heard"
        np.testing.assert_allclose(heard, first[: heard.size], atol=1e-6)
        tail = pieces[fade_at]
        assert abs(tail[-1]) < 0.01 and np.abs(first[heard.size : heard.size + FADE]).max() > 0.1, "faded out"
        rest = np.concatenate(pieces[fade_at + 1 :])
        np.testing.assert_allclose(rest, spoken([s.text for s in started], "high"), atol=1e-6)
        assert source.moves == [("primary", "backup", "error")]
        done = [e for e in events if isinstance(e, SegmentDone)]
        assert [d.segment_id for d in done] == [s.segment_id for s in started]

    asyncio.run(main())


def test_without_a_fallback_a_failure_ends_the_context_with_engine_error_as_before() -> None:
    async def main() -> None:
        primary, _, source, context = setup()
        source.chains = {}
        primary.mode = "fail"
        context.append(TEXT)
        context.done()
        events = await collect(context)
        errors = [e for e in events if isinstance(e, ContextError)]
        assert errors and errors[0].code == "engine_error" and "injected failure" in errors[0].message
        assert isinstance(events[-1], ContextDone) and events[-1].cancelled
        assert source.moves == [] and source.released == ["primary"]

    asyncio.run(main())


def test_an_engine_that_stops_taking_work_is_left_at_the_next_segment_boundary() -> None:
    async def main() -> None:
        primary, backup, source, context = setup()
        context.append(TEXT)
        stream = context.events()
        first = [await anext(stream)]
        source.down["primary"] = "draining"  # an unload began while the first segment speaks
        context.done()
        events = first + [e async for e in stream]
        started = segments(events)
        assert " ".join(s.text for s in started) == TEXT
        assert [s.degraded for s in started] == [False] + [True] * (len(started) - 1)
        assert source.moves == [("primary", "backup", "draining")]
        assert len(primary.jobs) == 1, "the segment already on the draining engine finishes there"
        assert all(j.voice == "high" for j in backup.jobs)

    asyncio.run(main())


def test_a_fallback_at_another_rate_is_resampled_to_the_contexts_rate() -> None:
    async def main() -> None:
        primary, _, _, context = setup(fallback_rate=16000)
        primary.mode = "fail"
        context.append(TEXT)
        context.done()
        events = await collect(context)
        expected_s = sum(len(s.text) for s in segments(events)) * MS_PER_CHAR / 1000.0
        assert context.sample_rate == RATE
        assert abs(audio_of(events).size / RATE - expected_s) < 0.05

    asyncio.run(main())


async def _until(condition: Any, rounds: int = 20_000) -> None:
    for _ in range(rounds):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("never happened")


async def _advance(clock: FakeClock, seconds: float, step: float = 0.01) -> None:
    for _ in range(round(seconds / step)):
        clock.advance(step)
        for _ in range(50):
            await asyncio.sleep(0)


@pytest.mark.parametrize("first_chars", [20, 400])
def test_a_stalled_job_moves_at_its_stall_deadline_and_not_before(first_chars: int) -> None:
    """20 characters (0.2 s) ahead of the stalled job: it waits `stall_s` from its start. 400 (4 s):
    it waits until `stall_s` before that audio runs out."""
    stall_s = 1.0

    async def main() -> None:
        clock = FakeClock(100.0)
        # No stretched pause after the first segment: its silence would announce the second one early.
        planner = PlannerSettings(
            clause_pause_ms=0, first_max_chars=first_chars, max_chars=max(200, first_chars)
        )
        primary, _, source, context = setup(stall_s=stall_s, clock=clock, planner=planner)
        primary.mode, primary.from_job = "stall", 1
        opening = ("Words " * (first_chars // 6))[: first_chars - 1].strip() + ","
        text = opening + " then the rest of it comes."
        context.append(text)
        context.done()
        events: list[Any] = []

        async def consume() -> None:
            async for event in context.events():
                events.append(event)

        task = asyncio.create_task(consume())
        await _until(lambda: len(primary.jobs) == 2)
        started_at = clock.now()
        first_audio_at = 100.0  # the first segment was emitted at once, on the fake clock's start
        ahead = len(segments(events)[0].text) * MS_PER_CHAR / 1000.0
        due = stall_deadline(progress_at=started_at, run_dry_at=first_audio_at + ahead, stall_s=stall_s)
        assert due == pytest.approx(started_at + stall_s if first_chars == 20 else 100.0 + ahead - stall_s)
        await _advance(clock, due - clock.now() - 0.02)
        assert source.moves == [], "not before its deadline"
        await _advance(clock, 0.05)
        assert source.moves == [("primary", "backup", "stall")]
        await asyncio.wait_for(task, 5)
        assert " ".join(s.text for s in segments(events)) == text
        assert [s.degraded for s in segments(events)] == [False, True]

    asyncio.run(main())


def test_stall_deadline() -> None:
    assert stall_deadline(progress_at=10.0, run_dry_at=10.5, stall_s=1.5) == 11.5
    assert stall_deadline(progress_at=10.0, run_dry_at=20.0, stall_s=1.5) == 18.5


def test_engine_health_is_a_circuit_breaker_that_retries_after_a_while() -> None:
    health = EngineHealth(retry_after_s=10.0)
    assert not health.degraded and health.available(0.0)
    health.record_failure(100.0, "stall")
    assert health.degraded and not health.available(105.0) and health.available(110.0)
    health.record_success(started_at=99.0)
    assert health.degraded, "a job that started before the failure proves nothing"
    health.record_failure(112.0, "error")
    assert health.failures == 2 and not health.available(115.0)
    health.record_success(started_at=122.5)
    assert not health.degraded and health.available(122.5)
    assert health.describe(0.0) == {"degraded": False}


def test_a_realtime_session_reports_degraded_segments_and_the_engine_speaking() -> None:
    """The session core (no socket): `segment.started.degraded`, `metrics.degraded` and `metrics.engine`."""
    import dataclasses

    from tests.session_harness import SessionHarness

    async def main() -> None:
        async with SessionHarness(preset={"output": {"lead_ms": 0}, "metrics": True}) as h:
            primary, backup = Engine("primary", "mid"), Engine("backup", "high")
            source = Source({"primary": primary, "backup": backup}, {"primary": ["backup"]})
            primary.mode, primary.from_job = "fail", 1

            def new_context(selection: Any, **options: Any) -> SpeechContext:
                return SpeechContext(
                    primary, voice="mid", planner=PlannerSettings(), engine_name="primary", source=source,
                    clock=h.clock, **options,
                )  # fmt: skip

            h.session.deps = dataclasses.replace(h.session.deps, new_context=new_context)
            h.session.append(TEXT, "a")
            h.session.done("a")
            t = h.transport
            await h.until(lambda: bool(t.events("context.done", context_id="a")))
            started = t.events("segment.started", context_id="a")
            assert " ".join(e["text"] for e in started) == TEXT
            assert [e["degraded"] for e in started] == [False] + [True] * (len(started) - 1)
            metrics = t.events("metrics", context_id="a")
            assert (metrics[-1]["engine"], metrics[-1]["degraded"]) == ("backup", True)
            assert t.events("error") == []

    asyncio.run(main())
