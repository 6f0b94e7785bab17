"""`POST /v1/audio/speech` through the real openai SDK against a real server."""

from __future__ import annotations

import base64
import json
import logging
import socket
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from realtime.engines.tone.engine import tone_samples
from tests.audio_check import decode
from tests.server import LiveServer, wait_for

SENTENCE = "Hello there! This is the realtime voice gateway speaking, with real speech."
DECODED_RATE = {"opus": 48000}  # Ogg Opus always decodes at 48 kHz


def client(server: LiveServer, **kwargs) -> openai.OpenAI:  # type: ignore[no-untyped-def]
    return openai.OpenAI(
        base_url=f"{server.url}/v1", api_key=kwargs.pop("api_key", "unused"), max_retries=0, **kwargs
    )


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
def test_every_format_with_piper_is_real_speech(server: LiveServer, fmt: str) -> None:
    response = client(server).audio.speech.create(
        model="tts-1", voice="alloy", input=SENTENCE, response_format=fmt
    )
    audio = decode(response.content, fmt)
    assert audio.channels == 1
    assert audio.sample_rate == DECODED_RATE.get(fmt, 24000)
    # About 4-5 s of speech for this sentence; VITS durations vary a little per run.
    assert 2.5 < audio.duration_s < 8.0, audio.duration_s
    assert audio.rms > 0.02, "speech, not silence"


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
def test_every_format_has_the_exact_duration(server: LiveServer, fmt: str) -> None:
    text = "abc def, ghi jkl. Mno pqr stu!"
    expected = tone_samples(text, "mid", 24000, 60.0).size / 24000
    response = client(server).audio.speech.create(model="tone", voice="mid", input=text, response_format=fmt)
    audio = decode(response.content, fmt)
    assert audio.sample_rate == DECODED_RATE.get(fmt, 24000)
    # Crossfades shorten each seam by 5 ms; lossy codecs add up to one frame of padding.
    assert expected - 0.05 <= audio.duration_s <= expected + 0.08, (audio.duration_s, expected)


@pytest.mark.parametrize("fmt", ["mp3", "opus", "wav", "pcm"])
def test_streamed_response_starts_before_synthesis_ends(server: LiveServer, fmt: str) -> None:
    text = " ".join([SENTENCE] * 8)  # ~600 characters, several seconds of synthesis
    engine = server.gateway.engines.get("piper")
    chars_before = engine.stats.chars
    chunks: list[bytes] = []
    chars_at_first_chunk = None
    with client(server).audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=text, response_format=fmt
    ) as response:
        for chunk in response.iter_bytes():
            if chars_at_first_chunk is None:
                chars_at_first_chunk = engine.stats.chars - chars_before
            chunks.append(chunk)
    assert chars_at_first_chunk is not None
    assert chars_at_first_chunk < len(text) / 2, "first bytes must leave long before the input is synthesized"
    audio = decode(b"".join(chunks), fmt)
    assert audio.duration_s > 20


def test_sse_stream(server: LiveServer) -> None:
    text = "Streaming events, one delta at a time. " * 3
    with client(server).audio.speech.with_streaming_response.create(
        model="tts-1", voice="nova", input=text, response_format="pcm", stream_format="sse"
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = b"".join(response.iter_bytes()).decode()
    events = []
    for block in raw.split("\n\n"):
        data = [line[5:].lstrip() for line in block.splitlines() if line.startswith("data:")]
        if data:
            events.append(json.loads("\n".join(data)))
    assert len(events) >= 3
    assert all(e["type"] == "speech.audio.delta" for e in events[:-1])
    done = events[-1]
    assert done["type"] == "speech.audio.done"
    usage = done["usage"]
    assert usage["input_tokens"] == len(text)
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0
    pcm = b"".join(base64.b64decode(e["audio"]) for e in events[:-1])
    audio = decode(pcm, "pcm")
    assert audio.duration_s > 3 and audio.rms > 0.02


def test_voice_as_object_and_speed(server: LiveServer) -> None:
    c = client(server)
    normal = c.audio.speech.create(model="tone", voice="mid", input="abcdefghij", response_format="pcm")
    fast = c.audio.speech.create(
        model="tone", voice={"id": "mid"}, input="abcdefghij", response_format="pcm", speed=2.0
    )
    assert decode(fast.content, "pcm").duration_s == pytest.approx(
        decode(normal.content, "pcm").duration_s / 2, rel=0.05
    )


@pytest.mark.parametrize("fmt,rate", [("mulaw", 8000), ("alaw", 8000)])
def test_telephony_formats(server: LiveServer, fmt: str, rate: int) -> None:
    r = httpx.post(
        f"{server.url}/v1/audio/speech",
        json={"model": "tts-1", "voice": "alloy", "input": "Thanks for calling.", "response_format": fmt},
    )
    assert r.status_code == 200 and r.headers["x-sample-rate"] == str(rate)
    audio = decode(r.content, fmt, rate)
    assert audio.duration_s > 0.5 and audio.rms > 0.02


BAD_REQUESTS = [
    ({"model": "tts-1", "voice": "alloy", "input": ""}, 400, "input"),
    ({"model": "tts-1", "voice": "alloy", "input": "x" * 4097}, 400, "input"),
    ({"model": "tts-1", "voice": "nobody", "input": "hi"}, 404, "voice"),
    ({"model": "nope", "voice": "alloy", "input": "hi"}, 404, "model"),
    ({"model": "tts-1", "voice": "alloy", "input": "hi", "speed": 10}, 400, "speed"),
    ({"model": "tts-1", "voice": "alloy", "input": "hi", "speed": "fast"}, 400, "speed"),
    ({"model": "tts-1", "voice": "alloy", "input": 123}, 400, "input"),
    ({"model": "tts-1", "voice": 5, "input": "hi"}, 400, "voice"),
    ({"model": "tts-1", "voice": "alloy", "input": "hi", "response_format": "ogg"}, 400, "response_format"),
    ({"model": "tts-1", "voice": "alloy", "input": "hi", "stream_format": "ws"}, 400, "stream_format"),
]


@pytest.mark.parametrize("body,status,param", BAD_REQUESTS)
def test_bad_input_gets_openai_errors(server: LiveServer, body: dict, status: int, param: str) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client(server).audio.speech.create(**body)
    assert info.value.status_code == status
    error = info.value.body
    assert isinstance(error, dict) and set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param and error["message"]
    # The server keeps serving.
    ok = client(server).audio.speech.create(
        model="tone", voice="mid", input="still here", response_format="pcm"
    )
    assert len(ok.content) > 0


@pytest.mark.parametrize(
    "body,param",
    [({"voice": "alloy", "input": "hi"}, "model"), ({"model": "tts-1", "input": "hi"}, "voice"),
     ({"model": "tts-1", "voice": {"name": "x"}, "input": "hi"}, "voice")],
)  # fmt: skip
def test_missing_fields_the_sdk_cannot_send(server: LiveServer, body: dict, param: str) -> None:
    r = httpx.post(f"{server.url}/v1/audio/speech", json=body)
    assert r.status_code == 400 and r.json()["error"]["param"] == param


@pytest.mark.parametrize("payload", [b"{not json", b"[1, 2]", b""])
def test_non_json_body(server: LiveServer, payload: bytes) -> None:
    r = httpx.post(
        f"{server.url}/v1/audio/speech", content=payload, headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_oversized_body_is_refused_without_reading_it_all(server: LiveServer) -> None:
    big = json.dumps({"model": "tone", "voice": "mid", "input": "x" * 400_000}).encode()
    declared = httpx.post(f"{server.url}/v1/audio/speech", content=big)
    assert declared.status_code == 413 and declared.json()["error"]["code"] == "body_too_large"

    def chunked() -> Iterator[bytes]:  # no Content-Length: the size is counted as it streams in
        yield from (big[i : i + 65536] for i in range(0, len(big), 65536))

    streamed = httpx.post(f"{server.url}/v1/audio/speech", content=chunked())
    assert streamed.status_code == 413 and streamed.json()["error"]["code"] == "body_too_large"
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_unknown_route_and_method_use_error_shape(server: LiveServer) -> None:
    r = httpx.get(f"{server.url}/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = httpx.get(f"{server.url}/v1/audio/speech")
    assert r.status_code == 405 and "error" in r.json()


def test_client_disconnect_cancels_engine_work(slow_server: LiveServer) -> None:
    engine = slow_server.gateway.engines.get("tone")
    before = (engine.stats.jobs_cancelled, engine.stats.chars)
    text = ("Several words make a long input for a slow engine. " * 70)[:3500]
    with httpx.stream(
        "POST",
        f"{slow_server.url}/v1/audio/speech",
        json={"model": "tone", "voice": "mid", "input": text, "response_format": "pcm"},
    ) as response:
        assert response.status_code == 200
        next(response.iter_bytes())
    # The engine notices: a job is cancelled, nothing stays queued, and work stops far short of the input.
    assert wait_for(lambda: engine.stats.jobs_cancelled > before[0])
    assert wait_for(
        lambda: (
            engine.queue_depth == 0
            and engine.stats.jobs_started
            == (engine.stats.jobs_completed + engine.stats.jobs_cancelled + engine.stats.jobs_failed)
        )
    )
    synthesized = engine.stats.chars - before[1]
    time.sleep(0.3)
    assert engine.stats.chars - before[1] == synthesized, "no new engine work after the disconnect"
    assert synthesized < len(text) / 4
    assert wait_for(lambda: slow_server.gateway.limiter.total == 0)


def test_session_limit_returns_429() -> None:
    with LiveServer(engines=["tone"], tone={"speed": 2.0}, max_sessions=1) as live:
        body = {"model": "tone", "voice": "mid", "input": "a long one " * 100, "response_format": "pcm"}
        with httpx.stream("POST", f"{live.url}/v1/audio/speech", json=body) as first:
            reader = first.iter_bytes()  # keep a reference: a collected iterator closes the stream
            next(reader)
            second = httpx.post(f"{live.url}/v1/audio/speech", json=body)
            assert second.status_code == 429
            assert second.json()["error"]["type"] == "rate_limit_error"
        assert wait_for(lambda: live.gateway.limiter.total == 0)
        third = httpx.post(f"{live.url}/v1/audio/speech", json={**body, "input": "short"})
        assert third.status_code == 200


def server_side_connection(port: int, peer_port: int) -> list[str]:
    """TCP states (hex, /proc/net/tcp) of the server's end of a loopback connection from `peer_port`."""
    states = []
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        local, remote, state = line.split()[1:4]
        if int(local.split(":")[1], 16) == port and int(remote.split(":")[1], 16) == peer_port:
            states.append(state)
    return [s for s in states if s not in ("06", "07")]  # TIME_WAIT and CLOSE hold nothing


def test_client_that_stops_reading_loses_its_slot_after_send_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # One session slot; a client that never reads must not keep it past send_timeout_s.
    with LiveServer(engines=["tone"], max_sessions=1, send_timeout_s=1.0, unacked_timeout_s=2.0) as live:
        body = json.dumps({"model": "tone", "voice": "mid", "input": "Long enough to fill buffers. " * 140,
                           "response_format": "pcm", "sample_rate": 48000}).encode()  # fmt: skip
        request = (
            f"POST /v1/audio/speech HTTP/1.1\r\nHost: 127.0.0.1:{live.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        stuck = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
        short = {"model": "tone", "voice": "mid", "input": "short", "response_format": "pcm"}
        try:
            with caplog.at_level(logging.WARNING, logger="realtime.transport.streaming"):
                stuck.connect(("127.0.0.1", live.port))
                stuck.sendall(request)  # and never read a byte of the response
                assert wait_for(lambda: live.gateway.limiter.total == 1, timeout=5), "it holds the slot"
                assert httpx.post(f"{live.url}/v1/audio/speech", json=short).status_code == 429
                started = time.monotonic()
                # Freed within about send_timeout_s once its send stalls (buffers fill in well under 1 s).
                assert wait_for(lambda: live.gateway.limiter.total == 0, timeout=6), "slot never released"
                freed_after = time.monotonic() - started
                second = httpx.post(f"{live.url}/v1/audio/speech", json=short)
                assert second.status_code == 200 and len(second.content) > 0
            assert freed_after < 5
            assert "client stopped reading" in caplog.text
            # And its connection is reset (TCP_USER_TIMEOUT, `unacked_timeout_s`), not left holding the
            # megabytes queued for it: asyncio's close() alone would wait for a drain that never comes.
            peer = stuck.getsockname()[1]
            assert wait_for(lambda: not server_side_connection(live.port, peer), timeout=8), (
                server_side_connection(live.port, peer)
            )
            engine = live.gateway.engines.get("tone")
            # Its speech context is gone: nothing queued or running for it any more.
            assert wait_for(lambda: engine.queue_depth == 0 and engine.load == 0)
            assert wait_for(lambda: live.gateway.limiter.total == 0)
        finally:
            stuck.close()


def test_not_ready_returns_503_until_loaded() -> None:
    with LiveServer(wait_ready=False, engines=["tone"], tone={"load_delay_s": 1.5}) as live:
        r = httpx.post(f"{live.url}/v1/audio/speech", json={"model": "tone", "voice": "mid", "input": "hi"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "engine_not_ready"
        assert httpx.get(f"{live.url}/ready").status_code == 503
        assert httpx.get(f"{live.url}/health").status_code == 200
        live.wait_ready()
        r = httpx.post(f"{live.url}/v1/audio/speech", json={"model": "tone", "voice": "mid", "input": "hi"})
        assert r.status_code == 200 and len(r.content) > 0


@pytest.mark.parametrize("fmt", ["mp3", "opus", "wav", "pcm"])
def test_synthesis_failing_before_any_audio_is_an_error_in_every_format(fmt: str) -> None:
    """Not a 200 carrying only a container's header (the encoder's tail): a 200 always has speech."""
    with LiveServer(engines=["tone"]) as live:
        engine = live.gateway.engines.get("tone")

        def fail(job: object, emit: object) -> None:
            raise RuntimeError("the model crashed")

        engine._work = fail  # type: ignore[union-attr]
        r = httpx.post(
            f"{live.url}/v1/audio/speech",
            json={"model": "tone", "voice": "mid", "input": "Hello there.", "response_format": fmt},
        )
        assert r.status_code == 500, r.content[:60]
        error = r.json()["error"]
        assert error["code"] == "engine_error" and "the model crashed" in error["message"]


def test_api_keys() -> None:
    with LiveServer(engines=["tone"], api_keys=["sekret"]) as live:
        with pytest.raises(openai.AuthenticationError):
            client(live, api_key="wrong").models.list()
        assert [m.id for m in client(live, api_key="sekret").models.list().data]
        assert httpx.get(f"{live.url}/health").status_code == 200
        assert httpx.get(f"{live.url}/metrics").status_code == 401
        ok = httpx.get(f"{live.url}/metrics", params={"api_key": "sekret"})
        assert ok.status_code == 200
