"""The `http` engine end to end: a gateway whose engine is another gateway, through REST and the
realtime WebSocket.

The upstream is a second gateway process serving the tone engine (its audio length is an exact
function of the text), started here as a user would run it; the gateway under test runs in this
process with the `http` engine pointing at it, plus an instance `faulty` pointing at the
fault-injecting upstream of tests/http_upstreams.py. What the upstream saw is read from its own
/metrics (or, for the fault upstream, its records): audio it sent, sessions open, jobs cancelled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from loadtest.common import ServerProcess
from tests.http_upstreams import FaultUpstream, Plan
from tests.realtime_client import eventually, run, session
from tests.server import LiveServer, wait_for

UPSTREAM_TONE_SPEED = 4.0
"""× real time: a 200-character job lasts 3 s upstream, long enough to be cancelled mid-request."""
SEAM_S = 0.005
"""The stitcher's crossfade, per seam between two jobs."""
TEXT = "Hello from the other gateway. Every sample of this answer was synthesized over there."
LONG = "A long answer that goes on for a while, word after word, clause after clause. " * 30


@pytest.fixture(scope="module")
def upstream() -> Iterator[ServerProcess]:
    env = {
        "REALTIME_ENGINES": '["tone"]',
        "REALTIME_TONE__SPEED": str(UPSTREAM_TONE_SPEED),
        "REALTIME_TONE__WORKERS": "4",
    }
    with ServerProcess(env=env) as live:
        yield live


@pytest.fixture(scope="module")
def fault() -> Iterator[FaultUpstream]:
    with FaultUpstream() as live:
        yield live


@pytest.fixture(scope="module")
def gateway(upstream: ServerProcess, fault: FaultUpstream) -> Iterator[LiveServer]:
    faulty = {"urls": [fault.url], "voices": ["mid"], "first_byte_timeout_s": 0.5, "stall_timeout_s": 0.5}
    with LiveServer(
        engines=["http", "faulty"],
        http={"urls": [f"{upstream.url}/v1"], "instances": {"faulty": faulty}},
        # No pause stretched with silence: what the client gets is what the engine got, seams aside.
        planner={"sentence_pause_ms": 0, "clause_pause_ms": 0},
    ) as live:
        yield live


@pytest.fixture
def plan(fault: FaultUpstream) -> Plan:
    fault.plan = Plan()
    fault.calls.clear()
    return fault.plan


def metric(base_url: str, name: str, **labels: str) -> float:
    """The sum of a Prometheus metric's samples whose labels include `labels`."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def test_the_upstreams_voices_and_the_instances_are_served(gateway: LiveServer) -> None:
    models = {m["id"] for m in httpx.get(f"{gateway.url}/v1/models").json()["data"]}
    assert {"http", "faulty"} <= models
    voices = httpx.get(f"{gateway.url}/v1/audio/voices", params={"model": "http"}).json()["voices"]
    assert [v["id"] for v in voices if "alias_of" not in v] == ["low", "mid", "high"]
    info = httpx.get(f"{gateway.url}/v1/info").json()
    assert info["engines"] == ["http", "faulty"] and info["default_engine"] == "http"
    assert info["capabilities"]["faulty"] == {
        "streaming": "chunk", "speed": True, "batching": False, "timestamps": False,
        "voice_blending": False, "voice_cloning": False, "device": "remote", "text_front_end": "markup",
    }  # fmt: skip


def test_rest_speech_comes_whole_from_the_upstream(gateway: LiveServer, upstream: ServerProcess) -> None:
    engine = gateway.gateway.engines.get("http")
    assert engine is not None
    sent_before = metric(upstream.url, "realtime_audio_sent_seconds_total", transport="rest")
    audio_before, jobs_before = engine.stats.audio_seconds, engine.stats.jobs_completed
    response = httpx.post(
        f"{gateway.url}/v1/audio/speech",
        json={"model": "http", "voice": "high", "input": TEXT, "response_format": "pcm"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-sample-rate"] == "24000"
    got_s = len(response.content) / 2 / 24000
    engine_s = engine.stats.audio_seconds - audio_before
    jobs = engine.stats.jobs_completed - jobs_before
    sent_s = metric(upstream.url, "realtime_audio_sent_seconds_total", transport="rest") - sent_before
    # Every sample the upstream sent reached the engine, and every one the engine made reached us.
    assert engine_s == pytest.approx(sent_s, abs=1e-6 * jobs + 1e-9)
    assert jobs >= 2, "the text was spoken in several jobs, each one upstream request"
    assert engine_s - jobs * SEAM_S - 1e-3 <= got_s <= engine_s + 1e-3
    assert got_s == pytest.approx(len(TEXT) * 0.060, rel=0.1)


def test_realtime_websocket_speaks_through_the_upstream(gateway: LiveServer) -> None:
    async def scenario() -> None:
        async with session(gateway, query={"engine": "http", "voice": "mid"}) as client:
            assert client.created["engine"] == "http" and client.created["voice"] == "mid"
            for word in TEXT.split(" "):
                await client.append(word + " ")
            done = await client.speak("", timeout=30)
            received_ms = len(client.audio()) / 48
            assert done["audio_ms"] == pytest.approx(received_ms, abs=20.5)
            assert received_ms == pytest.approx(len(TEXT) * 60, rel=0.15)

    run(scenario())


def test_a_cancel_reaches_the_upstream_gateway(gateway: LiveServer, upstream: ServerProcess) -> None:
    """Barge-in on the realtime socket: the upstream's own counters show its request closed and its
    engine job cancelled, not finished."""
    engine = gateway.gateway.engines.get("http")
    assert engine is not None

    def upstream_open() -> float:
        return metric(upstream.url, "realtime_active_sessions", transport="rest")

    async def scenario() -> None:
        cancelled_before = metric(
            upstream.url, "realtime_engine_jobs_total", engine="tone", outcome="cancelled"
        )
        async with session(gateway, query={"engine": "http"}) as client:
            await client.append(LONG, "talk")
            await client.done("talk")
            assert await eventually(lambda: engine.stats.jobs_completed >= 1 and upstream_open() >= 1, 20)
            await client.send("context.cancel", context_id="talk")
            cancelled_at = time.monotonic()
            await client.expect("speech.interrupted", context_id="talk")
            assert await eventually(lambda: upstream_open() == 0, 2.0), (
                "the upstream still serves the request"
            )
            assert time.monotonic() - cancelled_at < 2.0
            assert await eventually(
                lambda: (
                    metric(upstream.url, "realtime_engine_jobs_total", engine="tone", outcome="cancelled")
                    > cancelled_before
                ),
                2.0,
            ), "the upstream's engine job was not cancelled"
            assert await eventually(lambda: engine.load == 0, 2.0)

    run(scenario())


def test_a_rest_client_leaving_closes_the_upstream_request(
    gateway: LiveServer, fault: FaultUpstream, plan: Plan
) -> None:
    plan.pace = 1.0  # real time: each upstream request lasts as long as its audio

    with httpx.stream(
        "POST", f"{gateway.url}/v1/audio/speech",
        json={"model": "faulty", "voice": "mid", "input": LONG, "response_format": "pcm"}, timeout=30,
    ) as response:  # fmt: skip
        assert response.status_code == 200, response.read()
        # Read until an upstream request is open (between two segments' requests, none may be).
        assert any(fault.open_calls() >= 1 for _ in response.iter_raw()), "no upstream request while reading"
    left_at = time.monotonic()
    assert wait_for(lambda: fault.open_calls() == 0, 2.0), "the upstream request outlived its client"
    disconnects = [c.disconnected_at for c in fault.calls if c.disconnected_at is not None]
    assert disconnects and max(disconnects) - left_at < 1.0


@pytest.mark.parametrize("fmt", ["mp3", "pcm"])
def test_upstream_errors_come_in_our_error_shape(gateway: LiveServer, plan: Plan, fmt: str) -> None:
    """Also in a container format: no 200 carrying a header and no speech (the encoder's tail)."""
    plan.status = 503
    response = httpx.post(
        f"{gateway.url}/v1/audio/speech",
        json={"model": "faulty", "voice": "mid", "input": "Hello there.", "response_format": fmt},
        timeout=30,
    )
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "engine_error" and error["type"]
    assert "answered 503 Service Unavailable: the upstream is overloaded" in error["message"]
    assert "/v1/audio/speech" in error["message"]


def test_a_stalled_upstream_is_an_error_event_not_a_hang(
    gateway: LiveServer, fault: FaultUpstream, plan: Plan
) -> None:
    plan.first_byte_delay_s = 30.0

    async def scenario() -> None:
        async with session(gateway, query={"engine": "faulty"}) as client:
            began = time.monotonic()
            await client.append("Is anybody there?", "ask")
            await client.done("ask")
            error = await client.expect("error", timeout=5)
            assert error["code"] == "engine_error" and error["context_id"] == "ask"
            assert "sent no audio within 0.5 s" in error["message"]
            assert time.monotonic() - began < 3.0
            assert await eventually(lambda: fault.open_calls() == 0, 2.0), (
                "the stalled request was not closed"
            )

    run(scenario())


def test_many_requests_at_once_share_the_upstream_slots(gateway: LiveServer) -> None:
    """Eight REST requests at once through four upstream slots: all complete, and the slots are free."""
    engine = gateway.gateway.engines.get("http")
    assert engine is not None

    async def one(client: httpx.AsyncClient, n: int) -> int:
        response = await client.post(
            f"{gateway.url}/v1/audio/speech",
            json={
                "model": "http",
                "voice": "low",
                "input": f"Request {n} is here.",
                "response_format": "pcm",
            },
        )
        assert response.status_code == 200, response.text
        return len(response.content)

    async def scenario() -> list[int]:
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(*(one(client, n) for n in range(8)))

    sizes = asyncio.run(scenario())
    # 60 ms per character, less 65 ms per seam where the text was cut (the space and a crossfade).
    for n, size in enumerate(sizes):
        missing_ms = len(f"Request {n} is here.") * 60 - size / 48
        assert missing_ms >= 0 and missing_ms % 65 == pytest.approx(0, abs=0.5), (n, size)
    assert engine.gate.slots == 4 and engine.load == 0
