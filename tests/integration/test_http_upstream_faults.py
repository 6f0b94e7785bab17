"""The `http` engine against a fault-injecting upstream (`tests/http_upstreams.py`): errors, stalls,
streams that break, wrong formats, refused connections, balancing, and what the upstream sees of a
cancel. The engine runs alone here, without a gateway in front; tests/integration/test_http_engine.py
runs it end to end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from realtime.engines.base import EngineError, SynthesisJob
from realtime.engines.http.engine import HttpEngine
from realtime.engines.http.settings import OPENAI_VOICES, HttpUpstreamSettings
from realtime.engines.http.upstream import UpstreamError
from tests.http_upstreams import RATE, FaultUpstream, Plan, dead_url, expected_audio

LONG = "A long answer that goes on for a while, word after word. " * 4  # ~13.7 s of audio
DISCONNECT_BOUND_S = 0.5
"""A closed request reaches the upstream this soon (it notices at its next write: 100 ms when paced)."""


@pytest.fixture(scope="module")
def upstream() -> Iterator[FaultUpstream]:
    with FaultUpstream() as live:
        yield live


@pytest.fixture
def fault(upstream: FaultUpstream) -> FaultUpstream:
    upstream.plan = Plan()
    upstream.calls.clear()
    return upstream


def engine_for(*urls: str, **settings: Any) -> HttpEngine:
    defaults: dict[str, Any] = {"first_byte_timeout_s": 2.0, "stall_timeout_s": 2.0, "start_timeout_s": 0}
    return HttpEngine(HttpUpstreamSettings(urls=list(urls), **{**defaults, **settings}), name="faulty")


def run(coro: Any, timeout: float = 30.0) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


async def started(engine: HttpEngine) -> HttpEngine:
    await engine.start()
    return engine


async def speak(engine: HttpEngine, text: str, **fields: Any) -> np.ndarray:
    chunks = [c async for c in engine.synthesize(SynthesisJob(text, fields.pop("voice", "mid"), **fields))]
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


async def eventually(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


def test_audio_arrives_whole_and_exact_from_reads_split_inside_samples(fault: FaultUpstream) -> None:
    async def scenario() -> None:
        engine = await started(engine_for(fault.url, api_key="sk-up"))
        try:
            assert [v.id for v in engine.info.voices] == ["low", "mid", "high"]
            assert engine.info.default_voice == "low"  # no `alloy` upstream: its first voice
            audio = await speak(engine, "Exact audio, sample for sample.", voice="high", speed=2.0)
            expected = expected_audio("Exact audio, sample for sample.", "high", 2.0)
            assert audio.size == expected.size and np.allclose(audio, expected, atol=1 / 32767)
            call = fault.calls[-1]
            assert call.body == {"model": "tts-1", "input": "Exact audio, sample for sample.", "voice": "high",
                                 "response_format": "pcm", "speed": 2.0}  # fmt: skip
            assert call.headers["authorization"] == "Bearer sk-up" and call.finished
            assert engine.stats.jobs_completed == 1
            assert engine.stats.audio_seconds == pytest.approx(expected.size / RATE)
        finally:
            await engine.stop()

    run(scenario())


def test_without_a_voices_endpoint_the_voices_are_openais(fault: FaultUpstream) -> None:
    fault.plan.voices = None

    async def scenario() -> None:
        engine = await started(engine_for(fault.url))
        assert [v.id for v in engine.info.voices] == list(OPENAI_VOICES)
        assert engine.info.default_voice == "alloy"
        await engine.stop()

    run(scenario())


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        (Plan(status=503), r"upstream http://127\.0\.0\.1:\d+/v1/audio/speech answered 503 Service "
                           r"Unavailable: the upstream is overloaded"),
        (Plan(status=400, error={"detail": {"error": "validation_error", "message": "Voice 'mid' not found"}}),
         "answered 400 Bad Request: Voice 'mid' not found"),
        (Plan(status=500, error="Internal Server Error"), "answered 500 Internal Server Error: Internal Server Error"),
        (Plan(sample_rate_header=22050), "streams 22050 Hz pcm, but the engine is set to sample_rate 24000"),
        (Plan(content_type="application/json"), "answered application/json, not pcm audio"),
        (Plan(first_byte_delay_s=5.0), r"sent no audio within 0\.3 s"),
        (Plan(stall_after_bytes=9602), r"stalled: nothing for 0\.3 s mid-stream"),
        (Plan(break_after_bytes=9602), "the stream from upstream .* broke"),
    ],
)  # fmt: skip
def test_upstream_failures_are_engine_errors_that_say_what_happened(
    fault: FaultUpstream, plan: Plan, message: str
) -> None:
    async def scenario() -> None:
        engine = await started(engine_for(fault.url, first_byte_timeout_s=0.3, stall_timeout_s=0.3))
        fault.plan = plan
        try:
            began = time.monotonic()
            with pytest.raises(UpstreamError, match=message):
                await speak(engine, LONG)
            assert time.monotonic() - began < 3.0
            assert engine.stats.jobs_failed == 1 and engine.load == 0
            # Whatever it was doing, the upstream is not left with an open request.
            assert await eventually(lambda: fault.open_calls() == 0, 2.0)
        finally:
            await engine.stop()

    run(scenario())


def test_cancel_closes_the_upstream_request_at_once(fault: FaultUpstream) -> None:
    fault.plan = Plan(pace=1.0)  # real time: the request lasts ~14 s unless it is closed

    async def scenario() -> None:
        engine = await started(engine_for(fault.url))
        try:
            job = SynthesisJob(LONG, "mid")
            stream = engine.synthesize(job)
            await stream.__anext__()
            assert fault.open_calls() == 1
            job.cancel.cancel()  # a barge-in sets the token; the stream must end and close the request
            cancelled_at = time.monotonic()
            async for _ in stream:
                pass
            assert time.monotonic() - cancelled_at < DISCONNECT_BOUND_S
            assert await eventually(lambda: fault.calls[-1].disconnected_at is not None, DISCONNECT_BOUND_S)
            assert fault.calls[-1].disconnected_at - cancelled_at < DISCONNECT_BOUND_S  # type: ignore[operator]
            assert engine.stats.jobs_cancelled == 1 and engine.load == 0

            # A consumer that goes away (its session's task cancelled) closes the request too.
            stream = engine.synthesize(SynthesisJob(LONG, "mid"))
            await stream.__anext__()
            closed_at = time.monotonic()
            await stream.aclose()
            assert await eventually(lambda: fault.calls[-1].disconnected_at is not None, DISCONNECT_BOUND_S)
            assert fault.calls[-1].disconnected_at - closed_at < DISCONNECT_BOUND_S  # type: ignore[operator]
            assert engine.stats.jobs_cancelled == 2 and engine.load == 0
        finally:
            await engine.stop()

    run(scenario())


def test_a_job_task_cancelled_again_while_closing_still_closes_the_request(fault: FaultUpstream) -> None:
    """A session cancels its job's task more than once (`SpeechContext.cancel`, then closing its
    events): a later cancel must not cut short the close of the upstream connection."""
    fault.plan = Plan(pace=1.0)

    async def scenario() -> None:
        engine = await started(engine_for(fault.url))
        audio = asyncio.Event()

        async def consume() -> None:
            async for _ in engine.synthesize(SynthesisJob(LONG, "mid")):
                audio.set()

        task = asyncio.create_task(consume())
        try:
            await audio.wait()
            cancelled_at = time.monotonic()
            for _ in range(3):
                task.cancel()
                await asyncio.sleep(0)
            await asyncio.gather(task, return_exceptions=True)
            assert await eventually(lambda: fault.calls[-1].disconnected_at is not None, DISCONNECT_BOUND_S)
            assert fault.calls[-1].disconnected_at - cancelled_at < DISCONNECT_BOUND_S  # type: ignore[operator]
            assert engine.stats.jobs_cancelled == 1 and engine.load == 0
        finally:
            await engine.stop()

    run(scenario())


def test_requests_go_to_the_url_with_the_fewest_in_flight() -> None:
    """Two copies of a server, two slots each: four jobs take two each, a fifth waits for a slot,
    and as soon as a request ends on one URL the waiting job goes there."""
    with FaultUpstream() as a, FaultUpstream() as b:
        a.plan = Plan(pace=2.0)
        b.plan = Plan(pace=2.0)

        async def scenario() -> None:
            engine = await started(engine_for(a.url, b.url, max_concurrency=2))
            jobs = [SynthesisJob(LONG, "mid") for _ in range(5)]
            tasks = [
                asyncio.create_task(speak(engine, job.text, voice="mid", cancel=job.cancel)) for job in jobs
            ]
            try:
                assert await eventually(lambda: len(a.calls) + len(b.calls) == 4)
                assert (a.open_calls(), b.open_calls()) == (2, 2)
                assert engine.queue_depth == 1 and engine.load == pytest.approx(5 / 4)
                jobs[0].cancel.cancel()
                assert await eventually(lambda: len(a.calls) + len(b.calls) == 5)
                # The waiting job went where the cancelled request was (whose upstream sees it go soon).
                assert [u.outstanding for u in engine.upstreams] == [2, 2]
                assert await eventually(lambda: (a.open_calls(), b.open_calls()) == (2, 2), 1.0)
            finally:
                for job in jobs:
                    job.cancel.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await engine.stop()
            assert await eventually(lambda: a.open_calls() == b.open_calls() == 0)

        run(scenario())


def test_a_url_that_refuses_connections_is_skipped(fault: FaultUpstream) -> None:
    async def scenario() -> None:
        engine = await started(engine_for(dead_url(), fault.url, down_s=60))
        dead, live = engine.upstreams
        try:
            for n in range(4):
                audio = await speak(engine, f"Attempt {n}.")
                assert audio.size == expected_audio(f"Attempt {n}.", "mid").size
            assert engine.stats.jobs_completed == 4
            assert dead.requests == 1 and not dead.usable(), "tried once, then left out for down_s"
            assert live.requests == 4
        finally:
            await engine.stop()

    run(scenario())


def test_start_waits_for_an_upstream_then_fails_clearly() -> None:
    async def scenario() -> None:
        engine = engine_for(dead_url(), start_timeout_s=0.5)
        began = time.monotonic()
        with pytest.raises(EngineError, match=r"no upstream answered within 0\.5 s: cannot reach upstream"):
            await engine.start()
        assert 0.5 <= time.monotonic() - began < 3.0 and not engine.ready

    run(scenario())


def test_a_refused_api_key_fails_the_start_at_once(fault: FaultUpstream) -> None:
    fault.plan.voices = {"error": {"message": "Invalid API key"}}
    fault.plan.voices_status = 401

    async def scenario() -> None:
        engine = engine_for(fault.url, start_timeout_s=30)
        with pytest.raises(
            EngineError, match=r"answered 401 Unauthorized: Invalid API key \(check http\.instances"
        ):
            await engine.start()

    run(scenario(), timeout=5)
