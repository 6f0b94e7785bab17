"""Twilio Media Streams, emulated client, and the session control API that feeds it text."""

from __future__ import annotations

import asyncio
import base64
import json
import time
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
