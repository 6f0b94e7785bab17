"""Twilio Media Streams, emulated client, and the session control API that feeds it text."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from tests import twilio_client as tw
from tests.server import LiveServer, wait_for

TEXT = "Hello caller, thanks for waiting. How can I help you today?"


def ws_url(server: LiveServer, path: str) -> str:
    return server.url.replace("http", "ws", 1) + path


async def start_call(server: LiveServer, sid: str, **params: str):  # type: ignore[no-untyped-def]
    ws = await websockets.connect(ws_url(server, "/v1/telephony/twilio"))
    await ws.send(tw.connected())
    await ws.send(tw.start(sid, **params))
    session_id = params.get("session_id", sid)
    assert await asyncio.to_thread(wait_for, lambda: session_id in server.gateway.sessions, 5)
    return ws


async def inbound(ws, sid: str, frames: list[bytes], stop: asyncio.Event) -> None:  # type: ignore[no-untyped-def]
    """Send caller audio in real time, like Twilio does; silence once `frames` run out."""
    start = time.monotonic()
    for i in range(100_000):
        if stop.is_set():
            return
        await ws.send(tw.media(sid, i, frames[i] if i < len(frames) else tw.SILENCE))
        await asyncio.sleep(max(0.0, start + (i + 1) * 0.02 - time.monotonic()))


async def collect_until(ws, kinds: set[str], timeout: float = 20.0) -> list[tuple[float, dict[str, Any]]]:  # type: ignore[no-untyped-def]
    out = []
    deadline = time.monotonic() + timeout
    while True:
        message = tw.parse(await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic())))
        out.append((time.monotonic(), message))
        if message["event"] in kinds:
            return out


def test_outbound_frames_pacing_and_mark(server: LiveServer) -> None:
    async def main() -> None:
        ws = await start_call(server, "MZ-pace", session_id="call-pace", engine="tone")
        stop = asyncio.Event()
        feeder = asyncio.create_task(inbound(ws, "MZ-pace", [], stop))
        async with httpx.AsyncClient() as client:
            r = await client.post(
                f"{server.url}/v1/sessions/call-pace/text", json={"text": TEXT, "done": True}
            )
            assert r.status_code == 200 and r.json()["context_id"]
            context_id = r.json()["context_id"]
        messages = await collect_until(ws, {"mark"})
        stop.set()
        media = [(t, m) for t, m in messages if m["event"] == "media"]
        assert all(m["streamSid"] == "MZ-pace" for _, m in messages)
        sizes = {len(base64.b64decode(m["media"]["payload"])) for _, m in media}
        assert sizes == {tw.FRAME_BYTES}, "every outbound frame is exactly 20 ms of μ-law"
        # Tone audio: 60 ms per character, minus 5 ms per segment seam, padded to whole frames.
        expected = len(TEXT) * 0.06
        assert expected - 0.2 <= len(media) * 0.02 <= expected + 0.04
        mark = messages[-1][1]
        assert mark["mark"]["name"] == context_id
        # Paced in real time: never more than the lead (100 ms) ahead of playback.
        first = media[0][0]
        for i, (t, _m) in enumerate(media):
            assert i * 0.02 <= (t - first) + 0.1 + 0.06, f"frame {i} arrived too early"
        await ws.send(tw.stop("MZ-pace"))
        await feeder
        await ws.close()
        assert await asyncio.to_thread(wait_for, lambda: "call-pace" not in server.gateway.sessions, 5)

    asyncio.run(main())


def test_barge_in_from_caller_speech_sends_clear(server: LiveServer) -> None:
    speech = httpx.post(
        f"{server.url}/v1/audio/speech",
        json={
            "model": "tts-1",
            "voice": "alloy",
            "input": "Wait, stop, I have a question.",
            "response_format": "mulaw",
        },
    ).content
    assert len(speech) > 8000
    caller = [speech[i : i + 160].ljust(160, b"\xff") for i in range(0, len(speech), 160)]

    async def main() -> None:
        ws = await start_call(server, "MZ-barge", session_id="call-barge", engine="tone")
        control = await websockets.connect(ws_url(server, "/v1/sessions/call-barge/control"))
        assert json.loads(await control.recv())["type"] == "session.attached"
        await control.send(json.dumps({"type": "text.append", "text": "A long answer. " * 40}))
        await control.send(json.dumps({"type": "text.done"}))
        stop = asyncio.Event()
        silence_then_speech = [tw.SILENCE] * 25 + caller
        # Wait for outbound audio, then the caller starts talking over it.
        first = await collect_until(ws, {"media"})
        assert first[-1][1]["event"] == "media"
        feeder = asyncio.create_task(inbound(ws, "MZ-barge", silence_then_speech, stop))
        messages = await collect_until(ws, {"clear"})
        # Not one frame after the clear: read for a while and see only silence-free nothing.
        after: list[dict[str, Any]] = []
        try:
            while True:
                after.append(tw.parse(await asyncio.wait_for(ws.recv(), 0.6)))
        except TimeoutError:
            pass
        stop.set()
        assert [m for m in after if m["event"] == "media"] == [], "audio sent after clear"
        events = []
        try:
            while True:
                events.append(json.loads(await asyncio.wait_for(control.recv(), 0.5)))
        except TimeoutError:
            pass
        kinds = [e["type"] for e in events]
        assert "vad.speech_started" in kinds
        interrupted = [e for e in events if e["type"] == "speech.interrupted"]
        assert len(interrupted) == 1 and interrupted[0]["reason"] == "barge_in"
        media_ms = 20 * sum(1 for _, m in messages + first if m["event"] == "media")
        assert abs(interrupted[0]["sent_ms"] - media_ms) <= 20, (interrupted[0]["sent_ms"], media_ms)
        assert interrupted[0]["played_ms"] <= interrupted[0]["sent_ms"]
        await feeder
        await ws.send(tw.stop("MZ-barge"))
        await ws.close()
        await control.close()

    asyncio.run(main())


def test_dtmf_marks_and_stop_reach_the_control_socket(server: LiveServer) -> None:
    async def main() -> None:
        ws = await start_call(server, "MZ-dtmf", session_id="call-dtmf", engine="tone")
        control = await websockets.connect(ws_url(server, "/v1/sessions/call-dtmf/control"))
        attached = json.loads(await control.recv())
        assert attached["session_id"] == "call-dtmf" and attached["output"]["encoding"] == "mulaw"
        await ws.send(
            json.dumps(
                {"event": "dtmf", "streamSid": "MZ-dtmf", "dtmf": {"track": "inbound_track", "digit": "7"}}
            )
        )
        await ws.send(json.dumps({"event": "mark", "streamSid": "MZ-dtmf", "mark": {"name": "ctx-9"}}))
        got = [json.loads(await asyncio.wait_for(control.recv(), 5)) for _ in range(2)]
        assert {"type": "dtmf", "digit": "7"} in got and {"type": "playback.mark", "name": "ctx-9"} in got
        await ws.send(tw.stop("MZ-dtmf"))
        closed = await asyncio.wait_for(control.wait_closed(), 5)
        assert closed is None and control.close_code == 1000
        assert await asyncio.to_thread(wait_for, lambda: "call-dtmf" not in server.gateway.sessions, 5)

    asyncio.run(main())


@pytest.mark.parametrize(
    "media_format,reason",
    [({"encoding": "audio/l16", "sampleRate": 16000, "channels": 1}, "mulaw")],
)
def test_unsupported_media_format_is_refused(server: LiveServer, media_format: dict, reason: str) -> None:
    async def main() -> None:
        async with websockets.connect(ws_url(server, "/v1/telephony/twilio")) as ws:
            message = json.loads(tw.start("MZ-bad"))
            message["start"]["mediaFormat"] = media_format
            await ws.send(json.dumps(message))
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1008 and reason in ws.close_reason

    asyncio.run(main())


@pytest.mark.parametrize("start_field", [None, "text", [1, 2]])
def test_start_without_an_object_is_refused_with_a_reason(server: LiveServer, start_field: object) -> None:
    async def main() -> None:
        async with websockets.connect(ws_url(server, "/v1/telephony/twilio")) as ws:
            await ws.send(json.dumps({"event": "start", "start": start_field}))
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1008 and "streamSid" in ws.close_reason

    asyncio.run(main())
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_duplicate_session_id_is_refused(server: LiveServer) -> None:
    async def main() -> None:
        first = await start_call(server, "MZ-a", session_id="call-dup", engine="tone")
        async with websockets.connect(ws_url(server, "/v1/telephony/twilio")) as ws:
            await ws.send(tw.start("MZ-b", session_id="call-dup"))
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1008 and "already exists" in ws.close_reason
        await first.send(tw.stop("MZ-a"))
        await first.close()

    asyncio.run(main())


def test_control_api_errors_and_text_source_rules(server: LiveServer) -> None:
    async def main() -> None:
        async with httpx.AsyncClient(base_url=server.url) as client:
            r = await client.post("/v1/sessions/nope/text", json={"text": "hi"})
            assert r.status_code == 404 and r.json()["error"]["code"] == "session_not_found"
            ws = await start_call(server, "MZ-ctl", session_id="call-ctl", engine="tone")
            info = (await client.get("/v1/sessions/call-ctl")).json()
            assert info["transport"] == "twilio" and info["engine"] == "tone"
            assert (await client.post("/v1/sessions/call-ctl/text", content=b"{bad")).status_code == 400
            r = await client.post("/v1/sessions/call-ctl/text", json={"text": 5})
            assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_field"
            r = await client.post("/v1/sessions/call-ctl/flush", json={"context_id": "missing"})
            assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_context"
            assert (await client.post("/v1/sessions/call-ctl/explode")).status_code == 404
            r = await client.post(
                "/v1/sessions/call-ctl/text", json={"text": "One long reply. " * 30, "context_id": "c1"}
            )
            assert r.status_code == 200 and r.json()["context_id"] == "c1"
            await collect_until(ws, {"media"})
            r = await client.post("/v1/sessions/call-ctl/cancel", json={"context_id": "c1"})
            assert r.status_code == 200 and r.json()["interrupted"] == ["c1"]
            await collect_until(ws, {"clear"})
            control = await websockets.connect(ws_url(server, "/v1/sessions/call-ctl/control"))
            await control.recv()
            r = await client.post("/v1/sessions/call-ctl/text", json={"text": "hi"})
            assert r.status_code == 409, "one text source at a time"
            second = await websockets.connect(ws_url(server, "/v1/sessions/call-ctl/control"))
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(second.recv(), 5)
            assert second.close_code == 1008
            await control.close()
            assert await asyncio.to_thread(
                wait_for, lambda: server.gateway.sessions["call-ctl"].text_source is None, 5
            )
            assert (await client.post("/v1/sessions/call-ctl/text", json={"text": "back"})).status_code == 200
            await ws.send(tw.stop("MZ-ctl"))
            await ws.close()

    asyncio.run(main())


def test_control_api_answers_too_many_contexts_with_429(server: LiveServer) -> None:
    async def main() -> None:
        ws = await start_call(server, "MZ-many", session_id="call-many", engine="tone")
        limit = server.settings.max_contexts
        async with httpx.AsyncClient(base_url=server.url) as client:
            for i in range(limit):  # open contexts (no `done`): they wait their turn to speak
                r = await client.post(
                    "/v1/sessions/call-many/text", json={"text": "Wait. ", "context_id": f"c{i}"}
                )
                assert r.status_code == 200, r.text
            r = await client.post(
                "/v1/sessions/call-many/text", json={"text": "One more.", "context_id": "cx"}
            )
            assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_contexts", r.text
        await ws.send(tw.stop("MZ-many"))
        await ws.close()

    asyncio.run(main())


def test_control_api_requires_the_sessions_key() -> None:
    async def main(live: LiveServer) -> None:
        ws = await websockets.connect(ws_url(live, "/v1/telephony/twilio?api_key=k1"))
        await ws.send(tw.start("MZ-k", session_id="call-k", engine="tone"))
        assert await asyncio.to_thread(wait_for, lambda: "call-k" in live.gateway.sessions, 5)
        async with httpx.AsyncClient(base_url=live.url) as client:
            other = await client.post(
                "/v1/sessions/call-k/text", json={"text": "x"}, headers={"Authorization": "Bearer k2"}
            )
            assert other.status_code == 404
            owner = await client.post(
                "/v1/sessions/call-k/text", json={"text": "x"}, headers={"Authorization": "Bearer k1"}
            )
            assert owner.status_code == 200
        await ws.send(tw.stop("MZ-k"))
        await ws.close()

    with LiveServer(engines=["tone"], api_keys=["k1", "k2"]) as live:
        asyncio.run(main(live))


def test_overlong_session_id_is_refused(server: LiveServer) -> None:
    async def main() -> None:
        async with websockets.connect(ws_url(server, "/v1/telephony/twilio")) as ws:
            await ws.send(tw.start("MZ-long", session_id="x" * 129))
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1008 and "128" in ws.close_reason

    asyncio.run(main())


IDLE_S = 1.5
"""Long enough that a loaded 2-core CI machine does what each test needs within it."""


@pytest.fixture(scope="module")
def idle_server() -> Iterator[LiveServer]:
    """A short idle timeout and room for one session, so slots and timeouts show within seconds."""
    with LiveServer(engines=["tone"], idle_timeout_s=IDLE_S, max_sessions=1) as live:
        yield live


async def closed_with(ws, timeout: float = 5.0) -> tuple[int | None, str | None]:  # type: ignore[no-untyped-def]
    """Read until the server closes the socket (failing on any message); its close code and reason."""
    with pytest.raises(websockets.ConnectionClosed):
        message = await asyncio.wait_for(ws.recv(), timeout)
        pytest.fail(f"unexpected message before the close: {message!r}")
    return ws.close_code, ws.close_reason


def slots_free(server: LiveServer) -> bool:
    return wait_for(lambda: server.gateway.limiter.total == 0, 5)


def test_socket_without_start_is_closed_after_the_idle_timeout(idle_server: LiveServer) -> None:
    async def main() -> None:
        opened = time.monotonic()  # before the server accepts: its timer starts later
        ws = await websockets.connect(ws_url(idle_server, "/v1/telephony/twilio"))
        await ws.send(tw.connected())  # Twilio's first message; `start` never follows
        assert await closed_with(ws) == (4408, "idle timeout")
        assert IDLE_S <= time.monotonic() - opened <= 2 * IDLE_S + 1.0

    assert slots_free(idle_server)
    asyncio.run(main())
    assert slots_free(idle_server), "the slot is released when the waiting socket is closed"


def test_sockets_waiting_for_start_hold_a_session_slot(idle_server: LiveServer) -> None:
    async def main() -> None:
        waiting = await websockets.connect(ws_url(idle_server, "/v1/telephony/twilio"))
        assert await asyncio.to_thread(wait_for, lambda: idle_server.gateway.limiter.total == 1, 2)
        native = await websockets.connect(ws_url(idle_server, "/v1/realtime"))
        refused = json.loads(await asyncio.wait_for(native.recv(), 2))
        assert refused["type"] == "error" and refused["code"] == "too_many_sessions"
        code, reason = await closed_with(native)
        assert code == 1008 and "limit of 1 concurrent sessions" in reason
        another = await websockets.connect(ws_url(idle_server, "/v1/telephony/twilio"))
        code, reason = await closed_with(another)  # refused at once, before it could send `start`
        assert code == 1008 and "limit of 1 concurrent sessions" in reason
        # The idle timeout ends the waiting socket and gives its slot back.
        assert await closed_with(waiting) == (4408, "idle timeout")
        assert await asyncio.to_thread(slots_free, idle_server)
        native = await websockets.connect(ws_url(idle_server, "/v1/realtime"))
        assert json.loads(await asyncio.wait_for(native.recv(), 2))["type"] == "session.created"
        await native.close()
        # A caller that hangs up before `start` gives its slot back too.
        assert await asyncio.to_thread(slots_free, idle_server)
        hangup = await websockets.connect(ws_url(idle_server, "/v1/telephony/twilio"))
        assert await asyncio.to_thread(wait_for, lambda: idle_server.gateway.limiter.total == 1, 2)
        await hangup.close()
        assert await asyncio.to_thread(slots_free, idle_server)

    assert slots_free(idle_server)
    asyncio.run(main())


def test_call_without_media_is_closed_after_the_idle_timeout(idle_server: LiveServer) -> None:
    async def main() -> None:
        started = time.monotonic()  # before the session exists: its idle clock starts later
        ws = await start_call(idle_server, "MZ-quiet", session_id="call-quiet", engine="tone")
        assert idle_server.gateway.limiter.total == 1, "the session keeps the slot taken before start"
        control = await websockets.connect(ws_url(idle_server, "/v1/sessions/call-quiet/control"))
        assert json.loads(await control.recv())["type"] == "session.attached"
        assert await closed_with(ws) == (4408, "idle timeout")
        assert IDLE_S <= time.monotonic() - started <= 2 * IDLE_S + 1.0
        error = json.loads(await asyncio.wait_for(control.recv(), 2))
        if error["type"] == "session.created":  # attached before the writer sent it: observers see it too
            error = json.loads(await asyncio.wait_for(control.recv(), 2))
        assert error["type"] == "error" and error["code"] == "idle_timeout"
        await control.close()
        assert "call-quiet" not in idle_server.gateway.sessions

    assert slots_free(idle_server)
    asyncio.run(main())
    assert slots_free(idle_server)


def test_call_sending_media_is_not_idle(idle_server: LiveServer) -> None:
    async def main() -> None:
        ws = await start_call(idle_server, "MZ-live", session_id="call-live", engine="tone")
        stop = asyncio.Event()
        feeder = asyncio.create_task(inbound(ws, "MZ-live", [], stop))
        with pytest.raises(TimeoutError):  # nothing to say, and no close either
            await asyncio.wait_for(ws.recv(), 2 * IDLE_S)
        stop.set()
        await feeder
        assert ws.close_code is None and "call-live" in idle_server.gateway.sessions
        await ws.send(tw.stop("MZ-live"))
        assert await closed_with(ws) == (1000, "call ended")

    assert slots_free(idle_server)
    asyncio.run(main())
    assert slots_free(idle_server)


def test_quiet_caller_is_not_cut_off_while_the_gateway_speaks(idle_server: LiveServer) -> None:
    async def main() -> None:
        ws = await start_call(idle_server, "MZ-talk", session_id="call-talk", engine="tone")
        async with httpx.AsyncClient() as client:
            r = await client.post(
                f"{idle_server.url}/v1/sessions/call-talk/text",
                json={"text": "Hi there, one moment please, I am looking that up.", "done": True},
            )
            assert r.status_code == 200
        # About 3 s of audio, longer than the idle timeout, with no message from the caller.
        messages = await collect_until(ws, {"mark"}, timeout=10)
        media = [t for t, m in messages if m["event"] == "media"]
        assert media[-1] - media[0] > IDLE_S + 0.1
        assert await closed_with(ws) == (4408, "idle timeout")

    assert slots_free(idle_server)
    asyncio.run(main())
    assert slots_free(idle_server)
