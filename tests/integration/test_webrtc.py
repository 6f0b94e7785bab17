"""WebRTC transport with a real aiortc client: signalling, paced audio, data channel, barge-in, clean-up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from loadtest.webrtc_client import WebRtcClient
from tests.audio_check import piper_speech
from tests.server import LiveServer, wait_for


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, 60))


def resources_freed(server: LiveServer) -> bool:
    gw = server.gateway
    return (
        not server.app.state.webrtc_peers.peers
        and not any(s.transport == "webrtc" for s in gw.sessions.values())
        and gw.limiter.total == 0
        and all(e.load == 0 for e in gw.engines.engines.values())
    )


@pytest.fixture(scope="module")
def rtc_server() -> Iterator[LiveServer]:
    with LiveServer(engines=["tone", "piper"], max_sessions=3) as live:
        yield live


def test_offer_answer_paced_frames_and_speech_after_text(rtc_server: LiveServer) -> None:
    async def scenario() -> None:
        client = WebRtcClient(rtc_server.url, session={"metrics": True})
        await client.connect()
        try:
            created = await client.wait_event("session.created")
            assert created["output"] == {
                "encoding": "pcm",
                "sample_rate": 48000,
                "frame_ms": 20,
                "lead_ms": 60.0,
            }
            await asyncio.sleep(0.6)
            assert len(client.frames) >= 10, "the track sends silence while idle"
            assert client.speech_frames() == 0
            assert {f.samples for f in client.frames} == {960}, "20 ms frames at 48 kHz"
            sent_at = client.send(
                {"type": "text.append", "text": "Hello there. This is a test of the track."}
            )
            client.send({"type": "text.done"})
            done = await client.wait_event("context.done")
            await asyncio.sleep(0.5)
            first = client.first_speech_after(sent_at)
            assert first is not None, "speech arrives after text"
            # Speech for as long as the engine produced (the tone engine's own audio), none lost.
            assert abs(client.speech_span_ms(sent_at) - done["audio_ms"]) <= 80
            types = client.event_types()
            assert types.index("segment.started") < types.index("context.done")
            assert "metrics" in types
        finally:
            await client.close()

    run(scenario())
    assert wait_for(lambda: resources_freed(rtc_server), timeout=10)


def test_context_cancel_stops_audio_at_once(rtc_server: LiveServer) -> None:
    async def scenario() -> None:
        client = WebRtcClient(rtc_server.url)
        await client.connect()
        try:
            client.send({"type": "text.append", "text": "A long sentence that keeps on going. " * 20})
            client.send({"type": "text.flush"})
            await client.wait_event("segment.started")
            await asyncio.sleep(1.0)
            assert client.speech_frames() > 10
            client.send({"type": "context.cancel"})
            interrupted = await client.wait_event("speech.interrupted")
            at = time.monotonic()
            assert interrupted["reason"] == "cancel"
            await asyncio.sleep(1.0)
            # Frames already in flight (the client's own jitter buffer) may trail by a few frames.
            assert client.speech_frames(since=at + 0.15) == 0, "silence after the cancel"
            assert len([f for f in client.frames if f.at > at + 0.15]) > 20, "the track keeps going"
        finally:
            await client.close()

    run(scenario())
    assert wait_for(lambda: resources_freed(rtc_server), timeout=10)


def _caller_speech_48k(server: LiveServer) -> np.ndarray:
    """Silence, then real speech (Piper through the REST API), as int16 at 48 kHz."""
    speech = piper_speech(server.url, "Hold on, I have a question about that.", 48000)
    audio = np.concatenate([np.zeros(int(48000 * 1.5), np.float32), speech])
    return (np.clip(audio, -1, 1) * 32767).astype(np.int16)


def test_microphone_speech_barges_in(rtc_server: LiveServer) -> None:
    mic = _caller_speech_48k(rtc_server)

    async def scenario() -> None:
        client = WebRtcClient(rtc_server.url, session={"engine": "tone"}, microphone=mic)
        await client.connect()
        try:
            client.send({"type": "text.append", "text": "Let me tell you a very long story. " * 30})
            client.send({"type": "text.flush"})
            peer = rtc_server.app.state.webrtc_peers.peers[client.pc_id]
            buffers = [t.receiver._RTCRtpReceiver__jitter_buffer for t in peer.pc.getTransceivers()]
            assert [type(b).__name__ for b in buffers] == ["PassThroughAudioBuffer"], "no frames held back"
            started = await client.wait_event("vad.speech_started", timeout=15)
            interrupted = await client.wait_event("speech.interrupted", timeout=5)
            at = time.monotonic()
            assert started and interrupted["reason"] == "barge_in"
            await asyncio.sleep(1.0)
            heard = client.speech_span_ms()
            # sent_ms leaves out what the track dropped: it is what this client heard (the cut may
            # fall in a 60 ms pause of the tone engine's "words", which the span cannot see).
            assert -20 <= interrupted["sent_ms"] - heard <= 80, (interrupted, heard)
            assert client.speech_frames(since=at + 0.15) == 0, "nothing of the interrupted context follows"
        finally:
            await client.close()

    run(scenario())
    assert wait_for(lambda: resources_freed(rtc_server), timeout=10)


def test_hang_up_by_delete_frees_everything(rtc_server: LiveServer) -> None:
    # Piper, not the 50x tone engine: the tone engine can finish everything up to the 20 s
    # backpressure limit before the DELETE lands, leaving no job in flight to cancel.
    engine = rtc_server.gateway.engines.get("piper")

    async def scenario() -> None:
        client = WebRtcClient(rtc_server.url, session={"engine": "piper"})
        await client.connect()
        client.send({"type": "text.append", "text": "Keep talking for a while please. " * 20})
        client.send({"type": "text.flush"})
        await client.wait_event("segment.started")
        assert rtc_server.app.state.webrtc_peers.peers
        assert client.session_id in rtc_server.gateway.sessions
        async with httpx.AsyncClient(base_url=rtc_server.url) as http:
            assert (await http.delete(f"/v1/webrtc/{client.pc_id}")).status_code == 204
            again = await http.delete(f"/v1/webrtc/{client.pc_id}")
            assert again.status_code == 404 and again.json()["error"]["code"] == "peer_not_found"
        await client.close()

    cancelled_before = engine.stats.jobs_cancelled
    run(scenario())
    assert wait_for(lambda: resources_freed(rtc_server), timeout=10)
    assert engine.stats.jobs_cancelled > cancelled_before, "the engine job in flight must be cancelled"
    produced = engine.stats.audio_seconds
    time.sleep(0.3)
    assert engine.stats.audio_seconds == produced, "nothing more is synthesised for the gone peer"


def test_data_channel_errors_keep_the_session(rtc_server: LiveServer) -> None:
    async def scenario() -> None:
        client = WebRtcClient(rtc_server.url)
        await client.connect()
        try:
            client.channel.send("{not json")
            client.send({"type": "nope"})
            client.send({"type": "text.append", "text": 5})
            client.channel.send(b"\x00\x01")
            await asyncio.sleep(0.5)
            codes = [e.get("code") for _, e in client.events if e["type"] == "error"]
            assert codes == ["invalid_json", "unknown_type", "invalid_field", "invalid_frame"]
            client.send({"type": "text.append", "text": "Still here."})
            client.send({"type": "text.done"})
            await client.wait_event("context.done")
        finally:
            await client.close()

    run(scenario())


def test_oversized_data_channel_messages_get_an_error_and_keep_the_session() -> None:
    limit = 4096
    with LiveServer(engines=["tone"], max_frame_bytes=limit) as live:

        async def scenario() -> None:
            client = WebRtcClient(live.url)
            await client.connect()
            try:
                created = await client.wait_event("session.created")
                assert created["limits"]["max_frame_bytes"] == limit
                client.send({"type": "text.append", "text": "a" * limit})  # JSON around it: over the limit
                client.send({"type": "text.append", "text": "é" * (limit // 2)})  # chars < limit < bytes
                client.channel.send(b"\x00" * (limit + 1))
                client.send({"type": "nope"})  # still parsed, and its error comes in order
                await asyncio.sleep(0.5)
                errors = [e for _, e in client.events if e["type"] == "error"]
                assert [e["code"] for e in errors] == ["frame_too_large"] * 3 + ["unknown_type"]
                assert str(limit) in errors[0]["message"]
                # Nothing of the dropped messages reached the session: only this text is spoken.
                client.send({"type": "text.append", "text": "Still here."})
                client.send({"type": "text.done"})
                done = await client.wait_event("context.done")
                assert done["audio_ms"] == pytest.approx(len("Still here.") * 60, abs=40)
            finally:
                await client.close()

        run(scenario())
        assert live.gateway.metrics.errors.labels("frame_too_large")._value.get() == 3
        assert wait_for(lambda: resources_freed(live), timeout=10)


def test_trickled_candidates_are_accepted(rtc_server: LiveServer) -> None:
    async def scenario() -> None:
        client = WebRtcClient(rtc_server.url)
        await client.connect()
        try:
            async with httpx.AsyncClient(base_url=rtc_server.url) as http:
                body = {"pc_id": client.pc_id, "candidates": [
                    {"candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host", "sdpMid": "0",
                     "sdpMLineIndex": 0},
                    {"candidate": "", "sdpMid": "0", "sdpMLineIndex": 0},
                ]}  # fmt: skip
                assert (await http.patch("/v1/webrtc/offer", json=body)).status_code == 204
                bad = await http.patch("/v1/webrtc/offer", json={"pc_id": client.pc_id, "candidates": [
                    {"candidate": "garbage", "sdpMid": "0", "sdpMLineIndex": 0}]})  # fmt: skip
                assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_candidate"
                unknown = await http.patch("/v1/webrtc/offer", json={"pc_id": "pc_nope", "candidates": []})
                assert unknown.status_code == 404
        finally:
            await client.close()

    run(scenario())
    assert wait_for(lambda: resources_freed(rtc_server), timeout=10)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{nope", "invalid_json"),
        (b"[]", "invalid_json"),
        (b'{"type": "offer"}', "invalid_field"),
        (b'{"sdp": "v=0 garbage", "type": "offer"}', "invalid_sdp"),
        (b'{"sdp": "v=0", "type": "answer"}', "invalid_field"),
        (b'{"sdp": "v=0", "pc_id": "pc_x"}', "renegotiation_unsupported"),
        (b'{"sdp": "v=0", "session": {"voice": "no-such-voice"}}', "invalid_config"),
        (b'{"sdp": "v=0", "session": 3}', "invalid_field"),
        (b'{"sdp": "' + b"x" * 70000 + b'"}', "body_too_large"),
    ],
)
def test_bad_offers_get_openai_shaped_errors(rtc_server: LiveServer, body: bytes, code: str) -> None:
    response = httpx.post(f"{rtc_server.url}/v1/webrtc/offer", content=body, timeout=10)
    assert response.status_code in (400, 413)
    assert response.json()["error"]["code"] == code
    assert wait_for(lambda: resources_freed(rtc_server), timeout=10), "a refused offer holds nothing"


def test_offers_past_the_session_limit_get_429(rtc_server: LiveServer) -> None:
    async def scenario() -> None:
        clients = [WebRtcClient(rtc_server.url) for _ in range(3)]
        for c in clients:
            await c.connect()
        try:
            extra = WebRtcClient(rtc_server.url)
            with pytest.raises(RuntimeError, match="429"):
                await extra.connect()
            await extra.close()
        finally:
            for c in clients:
                await c.close()

    run(scenario())
    assert wait_for(lambda: resources_freed(rtc_server), timeout=10)


def test_offer_needs_the_api_key_when_keys_are_set() -> None:
    with LiveServer(engines=["tone"], api_keys=["k1", "k2"]) as live:
        assert httpx.post(f"{live.url}/v1/webrtc/offer", json={"sdp": "v=0"}).status_code == 401

        async def scenario() -> None:
            client = WebRtcClient(live.url, api_key="k1")
            await client.connect()
            try:
                async with httpx.AsyncClient(base_url=live.url) as http:
                    # No key is refused; another valid key cannot see, let alone hang up, this peer.
                    assert (await http.delete(f"/v1/webrtc/{client.pc_id}")).status_code == 401
                    other = await http.delete(
                        f"/v1/webrtc/{client.pc_id}", headers={"authorization": "Bearer k2"}
                    )
                    assert other.status_code == 404
                client.send({"type": "text.append", "text": "Authorised."})
                client.send({"type": "text.done"})
                await client.wait_event("context.done")
            finally:
                await client.close()

        run(scenario())
        assert wait_for(lambda: resources_freed(live), timeout=10)
