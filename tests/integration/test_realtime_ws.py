"""The native realtime protocol (`GET /v1/realtime`) end to end: a real server, a real WebSocket client.

Protocol flows run on the tone engine, whose audio length is an exact function of
the text (60 ms per character at speed 1, minus 5 ms per crossfaded seam), so every
byte of audio can be accounted for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import msgpack
import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from realtime.audio.g711 import mulaw_decode
from tests.audio_check import decode
from tests.realtime_client import MSGPACK, Audio, Event, RealtimeClient, eventually, run, session, ws_url
from tests.server import LiveServer

MS_PER_CHAR = 60.0  # tone engine default
SEAM_MS = 5.0  # stitcher crossfade per segment boundary
FRAME_MS = 20.0
PCM_BYTES_PER_MS = 48.0  # s16le at 24 kHz
TONE = {"engine": "tone"}
MAX_TEXT = 2000
MAX_CONTEXT = 3000
MAX_FRAME = 64 * 1024


@pytest.fixture(scope="module")
def tone() -> Iterator[LiveServer]:
    with LiveServer(
        engines=["tone"], max_text_chars=MAX_TEXT, max_context_chars=MAX_CONTEXT, max_frame_bytes=MAX_FRAME
    ) as live:
        yield live


@pytest.fixture(scope="module")
def lagging() -> Iterator[LiveServer]:
    """For clients that stop reading: small synthesis lead and jobs, a send timeout that never fires."""
    with LiveServer(
        engines=["tone"],
        send_timeout_s=60,
        unacked_timeout_s=120,
        max_ahead_s=2.0,
        planner={"max_chars": 60},
        max_queued_events=1000,
    ) as live:
        yield live


def pcm_ms(data: bytes, rate: int = 24000) -> float:
    return len(data) / 2 * 1000.0 / rate


def peak_hz(samples: np.ndarray, rate: int) -> float:
    """Dominant frequency; the tone engine restarts its sine per character, so expect ~1/char-time error."""
    x = samples.astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1.0 / rate)[int(np.argmax(spectrum))])


def pcm_samples(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def tone_hz(voice: str, ch: str) -> float:
    return {"low": 220.0, "mid": 330.0, "high": 440.0}[voice] * (1.0 + (ord(ch) % 12) / 12.0)


def deltas(text: str, size: int = 4) -> list[str]:
    """Split like an LLM stream: small pieces that cut words and punctuation anywhere."""
    return [text[i : i + size] for i in range(0, len(text), size)]


def check_context(
    client: RealtimeClient, context_id: str, text: str, *, bytes_per_ms: float = PCM_BYTES_PER_MS
) -> None:
    """Everything a finished context must satisfy: order, text, and audio accounting."""
    items = client.items
    started = client.events("segment.started", context_id=context_id)
    finished = client.events("segment.done", context_id=context_id)
    (done,) = client.events("context.done", context_id=context_id)
    assert started, "a context with text has at least one segment"
    # Segments are numbered in order, each announced before it is finished.
    assert [e["segment_id"] for e in started] == list(range(len(started)))
    assert [e["segment_id"] for e in finished] == list(range(len(started)))
    for s, d in zip(started, finished, strict=True):
        assert client.index(s) < client.index(d)
    # The segments' text, in order, is the input (whitespace-normalised).
    assert " ".join(e["text"] for e in started).split() == text.split()
    # Audio: none before the first segment.started, none after context.done.
    own = [i for i in items if isinstance(i, Audio) and i.context_id == context_id]
    assert own, "the context produced audio"
    assert client.index(own[0]) > client.index(started[0])
    assert client.index(own[-1]) < client.index(done)
    # segment.started precedes its audio: what arrived before segment k's start is at most the audio
    # of the segments before it; segment.done follows its audio (up to a partial frame + the seam).
    cumulative = 0.0
    for s, d in zip(started, finished, strict=True):
        before = sum(len(a.data) for a in own if client.index(a) < client.index(s)) / bytes_per_ms
        assert before <= cumulative + 0.5, (s.body, before, cumulative)
        cumulative += d["audio_ms"]
        by_done = sum(len(a.data) for a in own if client.index(a) < client.index(d)) / bytes_per_ms
        assert by_done >= cumulative - FRAME_MS - SEAM_MS - 0.5, (d.body, by_done, cumulative)
    # Totals: bytes == context.done audio_ms up to the last frame's padding; segments sum to it
    # (the final crossfade tail is released after the last segment.done).
    received_ms = sum(len(a.data) for a in own) / bytes_per_ms
    assert done["audio_ms"] - 0.5 <= received_ms < done["audio_ms"] + FRAME_MS + 0.5, (received_ms, done.body)
    assert done["audio_ms"] - SEAM_MS - 0.5 <= cumulative <= done["audio_ms"] + 0.5
    # The tone oracle: 60 ms per spoken character, one crossfade per seam.
    chars = sum(len(e["text"]) for e in started)
    assert abs(done["audio_ms"] - (chars * MS_PER_CHAR - SEAM_MS * (len(started) - 1))) <= 1.0, done.body


async def run_flow(client: RealtimeClient, text: str) -> str:
    for piece in deltas(text):
        await client.append(piece)
    await client.done()
    first = await client.expect("segment.started")
    context_id = first["context_id"]
    await client.expect("context.done", context_id=context_id)
    late = await client.quiet(0.3)
    assert late == [], f"context.done must be the last message of its context: {late}"
    check_context(client, context_id, text)
    audio = pcm_samples(client.audio(context_id))
    assert float(np.sqrt(np.mean(audio**2))) > 0.05, "tone audio, not silence"
    return context_id


# -- 1, 2: one context, JSON and msgpack -------------------------------------------------------


def test_session_created_describes_the_session(tone: LiveServer) -> None:
    async def scenario() -> None:
        async with session(tone, query=TONE) as client:
            created = client.created
            assert client.ws.subprotocol is None
            assert created["session_id"].startswith("sess_")
            assert created["session_id"] in tone.gateway.sessions
            assert created["engine"] == "tone" and created["voice"] == "mid"
            assert created["output"] == {
                "encoding": "pcm",
                "sample_rate": 24000,
                "frame_ms": 20,
                "lead_ms": 300.0,
            }
            assert created["limits"]["max_text_chars"] == MAX_TEXT
            assert created["limits"]["max_frame_bytes"] == MAX_FRAME
            assert set(created["limits"]) >= {
                "max_text_chars",
                "max_context_chars",
                "max_contexts",
                "max_frame_bytes",
            }
            async with session(tone, query={"engine": "tone", "voice": "high", "format": "mulaw"}) as other:
                assert other.created["session_id"] != created["session_id"]
                assert other.created["voice"] == "high"
                assert other.created["output"]["encoding"] == "mulaw"
                assert other.created["output"]["sample_rate"] == 8000

    run(scenario())


def test_permessage_deflate_is_declined_unless_enabled(tone: LiveServer) -> None:
    """Clients offer compression by default; audio does not compress, so the server declines it."""

    async def extensions(live: LiveServer) -> str | None:
        async with connect(ws_url(live, **TONE)) as ws:  # the websockets client offers permessage-deflate
            assert json.loads(await ws.recv())["type"] == "session.created"
            return ws.response.headers.get("Sec-WebSocket-Extensions")

    assert run(extensions(tone)) is None
    with LiveServer(engines=["tone"], websocket_compression=True) as compressing:
        assert "permessage-deflate" in (run(extensions(compressing)) or "")


def test_json_flow_with_llm_deltas(tone: LiveServer) -> None:
    text = "Hello there! This is a streamed reply, in small pieces."

    async def scenario() -> None:
        async with session(tone, query=TONE) as client:
            await run_flow(client, text)
            assert all(isinstance(i.data, bytes) for i in client.items if isinstance(i, Audio))

    run(scenario())


def test_msgpack_flow(tone: LiveServer) -> None:
    text = "Binary framing works too; every message is a map, audio included."

    async def scenario() -> None:
        async with session(tone, msgpack_mode=True, query=TONE) as client:
            assert client.ws.subprotocol == MSGPACK
            assert client.created["engine"] == "tone"
            await client.update(output={"lead_ms": 0})
            context_id = await run_flow(client, text)
            # Audio messages name their context themselves (not attributed by the client).
            assert {i.context_id for i in client.items if isinstance(i, Audio)} == {context_id}

    run(scenario())


# -- 3: several contexts ------------------------------------------------------------------------


def test_contexts_speak_one_at_a_time_in_order_of_opening(tone: LiveServer) -> None:
    a_parts = ["Alpha speaks ", "first, ", "and finishes here."]
    b_parts = ["Bravo waits ", "its turn. ", "Then bravo talks."]

    async def scenario() -> None:
        async with session(tone, msgpack_mode=True, query=TONE) as client:
            await client.update(output={"lead_ms": 0})
            for a, b in zip(a_parts, b_parts, strict=True):
                await client.append(a, "a")
                await client.append(b, "b")
            await client.done("b")  # b is finished first but was opened second
            await client.done("a")
            await client.expect("context.done", context_id="b")
            (a_done,) = client.events("context.done", context_id="a")
            b_items = [
                i for i in client.items
                if (isinstance(i, Audio) and i.context_id == "b") or (isinstance(i, Event) and i.get("context_id") == "b")
            ]  # fmt: skip
            assert b_items and all(client.index(i) > client.index(a_done) for i in b_items), "b waits for a"
            for context_id, parts in (("a", a_parts), ("b", b_parts)):
                check_context(client, context_id, "".join(parts))

    run(scenario())


def test_implicit_context_is_renewed_after_text_done(tone: LiveServer) -> None:
    async def scenario() -> None:
        async with session(tone, query=TONE) as client:
            await client.update(output={"lead_ms": 0})
            first = await client.speak("First reply.")
            second = await client.speak("Second reply.")
            assert first["context_id"] != second["context_id"]
            check_context(client, first["context_id"], "First reply.")
            check_context(client, second["context_id"], "Second reply.")
            # An explicit context that has finished cannot take more text.
            await client.speak("Named.", "named")
            await client.append("more", "named")
            error = await client.expect("error")
            assert error["code"] == "context_finished" and error["context_id"] == "named"

    run(scenario())


# -- 4: session.update -----------------------------------------------------------------------


def test_session_update_applies_to_contexts_opened_later(tone: LiveServer) -> None:
    text = "aaaaaaaaaaaa"  # one pitch: the voice is measurable

    async def scenario() -> None:
        async with session(tone, query=TONE) as client:
            await client.update(output={"lead_ms": 0})
            await client.append(text, "before")  # opened with mid voice, speed 1, pcm 24 kHz
            updated = await client.update(voice="high", speed=2.0, output={"encoding": "mulaw"})
            assert updated["voice"] == "high" and updated["speed"] == 2.0
            assert updated["output"]["encoding"] == "mulaw" and updated["output"]["sample_rate"] == 8000
            assert updated["output"]["lead_ms"] is None
            await client.done("before")
            await client.expect("context.done", context_id="before")
            after = await client.speak(text, "after")

            before_pcm = client.audio("before")
            assert abs(pcm_ms(before_pcm) - len(text) * MS_PER_CHAR) <= FRAME_MS
            assert abs(peak_hz(pcm_samples(before_pcm), 24000) - tone_hz("mid", "a")) < 20

            after_bytes = client.audio("after")  # mu-law: one byte per sample at 8 kHz
            assert after["audio_ms"] == pytest.approx(len(text) * MS_PER_CHAR / 2, abs=1.0)
            assert abs(len(after_bytes) / 8.0 - len(text) * MS_PER_CHAR / 2) <= FRAME_MS + SEAM_MS
            decoded = mulaw_decode(after_bytes)
            assert abs(peak_hz(decoded, 8000) - tone_hz("high", "a")) < 20
            assert float(np.sqrt(np.mean((decoded / 32768.0) ** 2))) > 0.1

    run(scenario())


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav"])
def test_compressed_output_delivers_the_whole_context_by_context_done(tone: LiveServer, fmt: str) -> None:
    """An encoder that buffers (mp3, aac, opus, flac) must be drained when a context ends: the client
    must not wait for the next context to hear the end of this one."""
    text = "Hello there, in a compressed format."

    async def scenario() -> None:
        async with session(tone, query={"engine": "tone", "format": fmt}) as client:
            assert client.created["output"]["encoding"] == fmt
            await client.update(output={"lead_ms": 0})
            done = await client.speak(text)
            await client.quiet(0.3)
            decoded = decode(client.audio(), fmt)
            assert decoded.rms > 0.05
            assert decoded.duration_s * 1000 >= done["audio_ms"] - 10, (decoded.duration_s, done.body)

    run(scenario())


INVALID_UPDATES: list[tuple[dict[str, Any], str]] = [
    ({"speed": 10}, "speed"),
    ({"speed": True}, "speed"),
    ({"output": {"encoding": "wav2"}}, "output.encoding"),
    ({"output": {"sample_rate": 1000}}, "output.sample_rate"),
    ({"output": {"frame_ms": 5}}, "output.frame_ms"),
    ({"output": {"lead_ms": -1}}, "output.lead_ms"),
    ({"output": "pcm"}, "output"),
    ({"engine": "nope"}, "engine"),
    ({"voice": "nobody"}, "voice"),
    ({"input_audio": {"encoding": "opus"}}, "input_audio.encoding"),
    ({"barge_in": {"enabled": "yes"}}, "barge_in.enabled"),
    ({"barge_in": {"aggressiveness": 7}}, "barge_in.aggressiveness"),
    ({"latency": "fast"}, "latency"),
    ({"metrics": 1}, "metrics"),
    ({"speed": 2.0, "voice": "nobody"}, "voice"),  # all or nothing: speed must not change either
]


def test_invalid_session_update_is_an_error_and_changes_nothing(tone: LiveServer) -> None:
    async def scenario() -> None:
        async with session(tone, query=TONE) as client:
            for patch, field in INVALID_UPDATES:
                await client.send("session.update", **patch)
                error = await client.expect("error")
                assert error["code"] == "invalid_config", (patch, error.body)
                assert field in error["message"], (patch, error.body)
            assert client.events("session.updated") == []
            current = await client.update(session={"metrics": False})  # the nested form is accepted too
            for key in ("engine", "voice", "speed", "output", "input_audio", "barge_in", "latency"):
                assert current[key] == client.created[key], key
            done = await client.speak("Still me.")
            assert done["audio_ms"] == pytest.approx(len("Still me.") * MS_PER_CHAR, abs=1.0)

    run(scenario())


# -- 5: pacing ---------------------------------------------------------------------------------


def test_lead_ms_paces_audio_to_real_time(tone: LiveServer) -> None:
    lead_ms = 200.0
    text = "Paced audio arrives no faster than it plays."

    async def scenario() -> None:
        async with session(tone, query=TONE) as client:
            updated = await client.update(output={"lead_ms": lead_ms}, metrics=True)
            assert updated["output"]["lead_ms"] == lead_ms and updated["metrics"] is True
            done = await client.speak(text)
            context_id = done["context_id"]
            audio = [i for i in client.items if isinstance(i, Audio) and i.context_id == context_id]
            assert pcm_ms(b"".join(a.data for a in audio)) > 2000, "long enough for pacing to matter"
            t0 = audio[0].at
            received = 0.0
            for a in audio:
                received += pcm_ms(a.data) / 1000.0
                assert received <= (a.at - t0) + lead_ms / 1000.0 + 0.25, (received, a.at - t0)
            metrics = client.events("metrics", context_id=context_id)
            assert len(metrics) == len(client.events("segment.done", context_id=context_id))
            for m in metrics:
                assert m["rtf"] is not None and m["rtf"] > 0
                assert isinstance(m["chunk"], int) and m["chunk"] > 0
                assert isinstance(m["underruns"], int) and m["underruns"] >= 0
                assert 0 <= m["buffer_ms"] <= lead_ms + 2 * FRAME_MS + 50, m.body
            assert metrics[-1]["ttfa_ms"] is not None and metrics[-1]["ttfa_ms"] >= 0

    run(scenario())


def test_lead_ms_zero_sends_as_fast_as_possible(tone: LiveServer) -> None:
    text = "As fast as the engine can go, with no pacing at all. " * 3

    async def scenario() -> None:
        async with session(tone, query=TONE) as client:
            updated = await client.update(output={"lead_ms": 0})
            assert updated["output"]["lead_ms"] is None
            await client.append(text)
            start = time.monotonic()
            await client.done()
            first = await client.expect("segment.started")
            done = await client.expect("context.done", context_id=first["context_id"])
            elapsed = done.at - start
            audio_s = pcm_ms(client.audio(first["context_id"])) / 1000.0
            assert audio_s > 8.0
            assert audio_s >= 3 * elapsed, (audio_s, elapsed)
            check_context(client, first["context_id"], text)

    run(scenario())


def test_an_answer_sent_ahead_stays_interruptible_until_it_has_played(tone: LiveServer) -> None:
    """With no pacing the whole answer is sent at once; the listener is still playing it after
    `context.done`, so a cancel must still reach it (the client drops what it has buffered)."""
    text = "Sent long before it plays, this answer can still be stopped. " * 2

    async def scenario() -> None:
        async with session(tone, query=TONE) as client:
            await client.update(output={"lead_ms": 0})
            done = await client.speak(text, "ahead")
            sent = pcm_ms(client.audio("ahead"))
            assert sent > 3000 and done["audio_ms"] > 3000
            async with httpx.AsyncClient(base_url=tone.url) as http:
                status = (await http.get(f"/v1/sessions/{client.created['session_id']}")).json()
            assert status["speaking"], "played out only by the clock, not by the send"
            await client.send("context.cancel", context_id="ahead")
            interrupted = await client.expect("speech.interrupted", context_id="ahead")
            assert interrupted["reason"] == "cancel"
            assert interrupted["sent_ms"] == pytest.approx(sent, abs=FRAME_MS)
            assert 0 <= interrupted["played_ms"] < sent - 1500, "most of it was still to play"
            late = await client.quiet(0.3)
            assert not [i for i in late if isinstance(i, Audio)], "nothing is sent after the cut"
            # Once interrupted, or once played out, there is nothing left to stop.
            await client.send("context.cancel", context_id="ahead")
            assert not [i for i in await client.quiet(0.3) if isinstance(i, Event)]

    run(scenario())


def test_a_played_out_answer_is_not_interrupted(tone: LiveServer) -> None:
    async def scenario() -> None:
        async with session(tone, query=TONE) as client:
            await client.update(output={"lead_ms": 0})
            await client.speak("Short.", "short")
            await asyncio.sleep(pcm_ms(client.audio("short")) / 1000.0 + 0.2)
            await client.send("context.cancel")
            await client.send("context.cancel", context_id="short")
            assert not [i for i in await client.quiet(0.3) if isinstance(i, Event)]

    run(scenario())


# -- 6, 8: context.cancel and playback.position -----------------------------------------------------

LONG = "This context is long enough to be cut off while it is still speaking. " * 4


async def start_long_context(client: RealtimeClient, context_id: str, min_audio_ms: float) -> None:
    await client.append(LONG, context_id)
    await client.done(context_id)

    def enough(_item: object) -> bool:
        return pcm_ms(client.audio(context_id)) >= min_audio_ms

    await client.until(enough, timeout=10)


def test_context_cancel_stops_audio_at_once(slow_server: LiveServer) -> None:
    engine = slow_server.gateway.engines.get("tone")

    async def scenario() -> None:
        async with session(slow_server) as client:
            cancelled_before = engine.stats.jobs_cancelled
            await start_long_context(client, "talk", 600)
            await client.send("context.cancel", context_id="talk")
            interrupted = await client.expect("speech.interrupted", context_id="talk")
            assert interrupted["reason"] == "cancel"
            received_ms = pcm_ms(client.audio("talk"))
            assert abs(interrupted["sent_ms"] - received_ms) <= FRAME_MS + 0.5, (
                interrupted.body,
                received_ms,
            )
            assert 0 <= interrupted["played_ms"] <= interrupted["sent_ms"]
            # Paced at most lead_ms (300) ahead: what was sent but not played is bounded by the lead.
            assert interrupted["sent_ms"] - interrupted["played_ms"] <= 300 + 2 * FRAME_MS + 60, (
                interrupted.body
            )
            late = await client.quiet(0.6)
            assert not [i for i in late if isinstance(i, Audio)], "no audio after speech.interrupted"
            assert not [i for i in late if isinstance(i, Event) and i.get("context_id") == "talk"], late
            assert pcm_ms(client.audio("talk")) == received_ms
            assert await eventually(lambda: engine.stats.jobs_cancelled > cancelled_before, timeout=5), (
                "the engine job in flight must be cancelled"
            )
            # The session goes on: a new context speaks in full.
            done = await client.speak("Back again.", "next")
            check_context(client, "next", "Back again.")
            assert done["audio_ms"] == pytest.approx(len("Back again.") * MS_PER_CHAR, abs=1.0)

    run(scenario())


def test_cancel_of_a_queued_context_leaves_the_speaking_one_alone(tone: LiveServer) -> None:
    first = "The first context keeps on talking."

    async def scenario() -> None:
        async with session(tone, msgpack_mode=True, query=TONE) as client:
            await client.append(first, "first")
            await client.done("first")
            await client.append("Never heard.", "queued")
            await client.done("queued")
            await client.until(lambda i: isinstance(i, Audio) and i.context_id == "first")
            await client.send("context.cancel", context_id="queued")
            interrupted = await client.expect("speech.interrupted", context_id="queued")
            assert interrupted["reason"] == "cancel"
            assert interrupted["sent_ms"] == 0 and interrupted["played_ms"] == 0
            await client.expect("context.done", context_id="first")
            await client.quiet(0.3)
            check_context(client, "first", first)
            assert client.audio("queued") == b""
            assert client.events("segment.started", context_id="queued") == []
            assert client.events("speech.interrupted", context_id="first") == []

    run(scenario())


def test_cancel_without_context_id_interrupts_every_open_context(tone: LiveServer) -> None:
    async def scenario() -> None:
        async with session(tone, query=TONE) as client:
            await client.append(LONG)  # the implicit context
            await client.append("Queued behind it.", "other")
            await client.until(lambda i: isinstance(i, Audio))
            speaking = client.current_context
            await client.send("context.cancel")
            await client.expect("speech.interrupted", context_id=speaking)
            await client.expect("speech.interrupted", context_id="other")
            late = await client.quiet(0.5)
            assert not [i for i in late if isinstance(i, Audio)], "no audio after the interruption"
            assert client.events("segment.started", context_id="other") == []
            done = await client.speak("Fresh start.")
            assert done["context_id"] not in (speaking, "other")

    run(scenario())


def test_cancel_while_the_client_lags_sends_no_stale_audio(lagging: LiveServer) -> None:
    """The speaker may be waiting for room in a full outbox when the cancel lands: the frame it holds
    must not be queued behind speech.interrupted."""

    async def scenario() -> None:
        client, manager = await stop_reading(lagging, "lagging")
        try:
            await wait_until_stalled(lagging, client.created["session_id"])
            await client.send("context.cancel", context_id="lagging")
            interrupted = await client.expect("speech.interrupted", timeout=30, context_id="lagging")
            await client.quiet(0.5)
            after = [i for i in client.items[client.index(interrupted) + 1 :] if isinstance(i, Audio)]
            assert after == [], (
                f"{len(after)} audio frame(s) of the cancelled context after speech.interrupted"
            )
            received_ms = pcm_ms(client.audio("lagging"))
            assert abs(interrupted["sent_ms"] - received_ms) <= 0.5, (interrupted.body, received_ms)
        finally:
            await manager.__aexit__(None, None, None)

    run(scenario())


def test_text_for_a_cancelled_context_is_refused_as_finished(tone: LiveServer) -> None:
    async def scenario() -> None:
        async with session(tone, query=TONE) as client:
            await client.append("The first context keeps on talking.", "first")
            await client.done("first")
            await client.append("Cancelled before it speaks.", "queued")  # no text.done yet
            await client.until(lambda i: isinstance(i, Audio))
            await client.send("context.cancel", context_id="queued")
            await client.expect("speech.interrupted", context_id="queued")
            await client.append(" More text.", "queued")
            error = await client.expect("error")
            assert error["context_id"] == "queued"
            assert error["code"] == "context_finished", error.body
            await client.expect("context.done", context_id="first")
            assert client.audio("queued") == b""

    run(scenario())


def test_playback_position_is_reported_back_on_interruption(tone: LiveServer) -> None:
    async def scenario() -> None:
        async with session(tone, query=TONE) as client:
            await start_long_context(client, "heard", 400)
            await client.send("playback.position", context_id="heard", played_ms=123)
            await client.send("playback.position", context_id="heard", played_ms=50)  # never goes back
            await client.send("context.cancel", context_id="heard")
            interrupted = await client.expect("speech.interrupted", context_id="heard")
            assert interrupted["played_ms"] == 123
            assert interrupted["sent_ms"] >= 400

            # A position beyond what was sent is capped at what was sent before the cut (sent_ms
            # also counts the faded-out frame that ends the context).
            await start_long_context(client, "capped", 200)
            await client.send("playback.position", context_id="capped", played_ms=10_000_000)
            await client.send("context.cancel", context_id="capped")
            interrupted = await client.expect("speech.interrupted", context_id="capped")
            received_ms = pcm_ms(client.audio("capped"))
            assert (
                interrupted["sent_ms"] - FRAME_MS - 0.5 <= interrupted["played_ms"] <= interrupted["sent_ms"]
            )
            assert interrupted["played_ms"] <= received_ms

    run(scenario())


@pytest.mark.parametrize("how", ["close", "abort"])
def test_client_leaving_mid_speech_frees_the_session_and_the_engine(
    slow_server: LiveServer, how: str
) -> None:
    engine = slow_server.gateway.engines.get("tone")

    async def scenario() -> None:
        cancelled_before = engine.stats.jobs_cancelled
        async with session(slow_server) as client:
            session_id = client.created["session_id"]
            await start_long_context(client, "talk", 300)
            if how == "close":
                await client.ws.close()
            else:
                client.ws.transport.abort()
            assert await eventually(lambda: session_id not in slow_server.gateway.sessions, timeout=5)
        assert await eventually(lambda: engine.stats.jobs_cancelled > cancelled_before, timeout=5)
        produced = engine.stats.audio_seconds
        await asyncio.sleep(0.5)
        assert engine.stats.audio_seconds == produced, "nothing synthesizes for a session that is gone"

    run(scenario())


def test_empty_context_finishes_without_audio(tone: LiveServer) -> None:
    async def scenario() -> None:
        async with session(tone, query=TONE) as client:
            for context_id, text in (("empty", ""), ("blank", "   ")):
                await client.append(text, context_id)
                await client.done(context_id)
                done = await client.expect("context.done", timeout=3, context_id=context_id)
                assert done["audio_ms"] == 0
                assert client.events("segment.started", context_id=context_id) == []
            assert client.audio() == b""
            await assert_still_working(client)

    run(scenario())


def test_text_done_after_everything_was_spoken_finishes_the_context(tone: LiveServer) -> None:
    """LLM streams often end with whitespace: the last sentence is spoken before text.done arrives."""

    async def scenario() -> None:
        async with session(tone, query=TONE) as client:
            await client.append("Hello there. ", "a")
            await client.expect("segment.done", context_id="a")
            await client.quiet(0.3)
            await client.done("a")
            await client.expect("context.done", timeout=3, context_id="a")
            check_context(client, "a", "Hello there.")
            await assert_still_working(client)  # and the contexts behind it are not blocked

    run(scenario())


def test_text_flush_speaks_the_buffer_without_ending_the_context(tone: LiveServer) -> None:
    async def scenario() -> None:
        async with session(tone, query=TONE) as client:
            await client.update(output={"lead_ms": 0})
            await client.append("no punctuation to cut at yet", "f")
            await client.send("text.flush", context_id="f")

            def flushed(_item: object) -> bool:
                texts = [e["text"] for e in client.events("segment.started", context_id="f")]
                done_ids = {e["segment_id"] for e in client.events("segment.done", context_id="f")}
                return " ".join(texts).split()[-1:] == ["yet"] and len(done_ids) == len(texts)

            await client.until(flushed, timeout=5)
            assert client.events("context.done") == [], "a flush does not end the context"
            await client.append(" And then some more.", "f")
            await client.done("f")
            await client.expect("context.done", context_id="f")
            check_context(client, "f", "no punctuation to cut at yet And then some more.")

    run(scenario())


def phrasing_counters(live: LiveServer, transport: str) -> tuple[float, float]:
    """`realtime_segments_total` and `realtime_mid_phrase_cuts_total` of `transport`."""
    text = httpx.get(f"{live.url}/metrics").text

    def value(name: str) -> float:
        line = f'{name}{{transport="{transport}"}} '
        return sum(float(row[len(line) :]) for row in text.splitlines() if row.startswith(line))

    return value("realtime_segments_total"), value("realtime_mid_phrase_cuts_total")


def test_mid_phrase_cuts_are_counted_per_transport(tone: LiveServer) -> None:
    """A flush forces "I can help" out on its own: one mid-phrase cut of two segments. The context's
    last segment never counts, whatever it ends with."""

    async def scenario() -> None:
        async with session(tone, query=TONE) as client:
            await client.append("I can help", "m")
            await client.send("text.flush", context_id="m")
            await client.expect("segment.started", context_id="m")
            await client.append(" with that and more", "m")
            await client.done("m")
            await client.expect("context.done", context_id="m")
            assert [e["text"] for e in client.events("segment.started")] == [
                "I can help",
                "with that and more",
            ]

    segments, mid = phrasing_counters(tone, "websocket")
    run(scenario())
    assert phrasing_counters(tone, "websocket") == (segments + 2, mid + 1)


def test_max_contexts_refuses_one_more_until_they_finish(tone: LiveServer) -> None:
    limit = tone.settings.max_contexts

    async def scenario() -> None:
        async with session(tone, query=TONE) as client:
            sess = tone.gateway.sessions[client.created["session_id"]]
            await client.append(LONG, "c0")
            for n in range(1, limit):
                await client.append("Queued.", f"c{n}")
            await client.append("One too many.", "extra")
            error = await client.expect("error")
            assert error["code"] == "too_many_contexts" and error["context_id"] == "extra"
            await client.send("context.cancel")
            for n in range(limit):
                await client.expect("speech.interrupted", context_id=f"c{n}")
            assert await eventually(lambda: not sess._slots, timeout=5)
            await client.speak("Ok.", "extra")

    run(scenario())


def test_context_over_max_context_chars_is_refused(tone: LiveServer) -> None:
    async def scenario() -> None:
        async with session(tone, query=TONE) as client:
            await client.append("a " * (MAX_TEXT // 2), "big")
            await client.append("b " * (MAX_TEXT // 2), "big")  # 4000 buffered > MAX_CONTEXT
            error = await client.expect("error")
            assert error["code"] == "text_too_long" and error["context_id"] == "big"
            await client.send("context.cancel", context_id="big")
            await client.expect("speech.interrupted", context_id="big")
            await assert_still_working(client)

    run(scenario())


def test_text_without_context_id_after_a_cancel_starts_a_new_context(tone: LiveServer) -> None:
    async def scenario() -> None:
        async with session(tone, query=TONE) as client:
            await client.append("This first answer is cut off by the listener. " * 3)
            first = (await client.expect("segment.started"))["context_id"]
            await client.send("context.cancel")
            await client.expect("speech.interrupted", context_id=first)
            live = tone.gateway.sessions[client.created["session_id"]]
            # The listener dropped its buffer: the next answer is not paced behind audio nobody hears.
            assert live.playout.lead_s(live.clock.now()) <= 2 * FRAME_MS / 1000.0
            done = await client.speak("And here is the next one.")
            assert done["context_id"] != first
            check_context(client, done["context_id"], "And here is the next one.")

    run(scenario())


def test_interruption_history_is_bounded(tone: LiveServer) -> None:
    async def scenario() -> None:
        async with session(tone, query=TONE) as client:
            for i in range(80):
                await client.append("Never mind. " * 3, f"c{i}")
                await client.send("context.cancel", context_id=f"c{i}")
                await client.expect("speech.interrupted", context_id=f"c{i}")
            live = tone.gateway.sessions[client.created["session_id"]]
            assert live.interruption_count == 80
            assert len(live.interruptions) <= 64
            assert live.interruptions[-1]["context_id"] == "c79"
            assert len(live._slots) <= 1, "cancelled contexts that never spoke leave at once"

    run(scenario())


# -- 9: malformed input -----------------------------------------------------------------------------

JSON_ERRORS: list[tuple[str, str | bytes, str, str | None]] = [
    ("not-json", "not json{", "invalid_json", None),
    ("array", "[1, 2]", "invalid_message", None),
    ("string", '"hello"', "invalid_message", None),
    ("missing-type", '{"text": "hi"}', "invalid_message", None),
    ("number-type", '{"type": 7}', "invalid_message", None),
    ("unknown-type", '{"type": "text.shout"}', "unknown_type", None),
    ("text-not-string", '{"type": "text.append", "text": 5}', "invalid_field", None),
    ("text-missing", '{"type": "text.append"}', "invalid_field", None),
    (
        "text-too-long",
        json.dumps({"type": "text.append", "text": "x" * (MAX_TEXT + 1)}),
        "text_too_long",
        None,
    ),
    ("flush-unknown", '{"type": "text.flush", "context_id": "ghost"}', "unknown_context", "ghost"),
    ("done-unknown", '{"type": "text.done", "context_id": "ghost"}', "unknown_context", "ghost"),
    ("cancel-unknown", '{"type": "context.cancel", "context_id": "ghost"}', "unknown_context", "ghost"),
    ("context-id-number", '{"type": "text.append", "text": "a", "context_id": 5}', "invalid_field", None),
    ("context-id-empty", '{"type": "text.append", "text": "a", "context_id": ""}', "invalid_field", None),
    ("context-id-long", json.dumps({"type": "text.flush", "context_id": "c" * 129}), "invalid_field", None),
    ("uplink-unconfigured", b"\x00\x01" * 160, "no_input_audio", None),
    (
        "position-negative",
        '{"type": "playback.position", "context_id": "x", "played_ms": -1}',
        "invalid_field",
        "x",
    ),
    (
        "position-string",
        '{"type": "playback.position", "context_id": "x", "played_ms": "5"}',
        "invalid_field",
        "x",
    ),
    (
        "position-bool",
        '{"type": "playback.position", "context_id": "x", "played_ms": true}',
        "invalid_field",
        "x",
    ),
    ("update-not-object", '{"type": "session.update", "output": 3}', "invalid_config", None),
    ("nested-too-deep", "[" * 10_000, "invalid_json", None),
    (
        "position-overflows-float",
        '{"type": "playback.position", "context_id": "x", "played_ms": 1' + "0" * 400 + "}",
        "invalid_field",
        "x",
    ),
    (
        "position-nan",
        '{"type": "playback.position", "context_id": "x", "played_ms": NaN}',
        "invalid_field",
        "x",
    ),
]


async def assert_still_working(client: RealtimeClient) -> None:
    done = await client.speak("Ok.")  # shorter than the lead: no pacing wait
    check_context(client, done["context_id"], "Ok.")


@pytest.mark.parametrize(
    ("frame", "code", "context_id"), [c[1:] for c in JSON_ERRORS], ids=[c[0] for c in JSON_ERRORS]
)
def test_malformed_json_input_is_answered_and_the_session_survives(
    tone: LiveServer, frame: str | bytes, code: str, context_id: str | None
) -> None:
    async def scenario() -> None:
        async with session(tone, query=TONE) as client:
            await client.ws.send(frame)
            error = await client.expect("error")
            assert error["code"] == code, error.body
            assert isinstance(error["message"], str) and error["message"]
            assert error.get("context_id") == context_id
            await assert_still_working(client)
            assert client.events("error") == [error]

    run(scenario())


def test_uplink_audio_far_faster_than_real_time_is_dropped_with_one_error(tone: LiveServer) -> None:
    """VAD runs on the event loop: a client flooding audio must not take it from everyone else."""

    async def scenario() -> None:
        async with session(tone, query=TONE) as client:
            await client.update(input_audio={"encoding": "pcm", "sample_rate": 16000})
            second = bytes(32000)  # 1 s of 16 kHz silence
            for _ in range(20):  # 20 s of audio at once: 5 s of burst pass, the rest is dropped
                await client.send_audio(second)
            error = await client.expect("error", allow_errors=True)
            assert error["code"] == "input_audio_too_fast" and "real time" in error["message"], error.body
            await assert_still_working(client)
            codes = [e["code"] for e in client.events("error")]
            assert set(codes) == {"input_audio_too_fast"} and len(codes) <= 3, codes  # at most one a second
            sess = tone.gateway.sessions[client.created["session_id"]]
            # 5 s of burst, plus what the budget refilled (2x real time) while the frames came in.
            assert sess._vad is not None and 5000.0 <= sess._vad.position_ms <= 12000.0

    run(scenario())


def pack(message: object) -> bytes:
    return msgpack.packb(message, use_bin_type=True)


MSGPACK_ERRORS: list[tuple[str, str | bytes, str]] = [
    ("garbage", b"\xc1\xc1\xc1", "invalid_msgpack"),
    ("truncated", b"\x82\xa4type", "invalid_msgpack"),
    ("array", pack([1, 2]), "invalid_message"),
    ("unknown-type", pack({"type": "nope"}), "unknown_type"),
    ("text-frame", '{"type": "text.flush"}', "invalid_frame"),
    ("text-as-bytes", pack({"type": "text.append", "text": b"bytes"}), "invalid_field"),
    ("audio-missing", pack({"type": "input_audio"}), "invalid_field"),
    ("audio-as-string", pack({"type": "input_audio", "audio": "abc"}), "invalid_field"),
    ("uplink-unconfigured", pack({"type": "input_audio", "audio": b"\x00" * 320}), "no_input_audio"),
]


@pytest.mark.parametrize(
    ("frame", "code"), [c[1:] for c in MSGPACK_ERRORS], ids=[c[0] for c in MSGPACK_ERRORS]
)
def test_malformed_msgpack_input_is_answered_and_the_session_survives(
    tone: LiveServer, frame: str | bytes, code: str
) -> None:
    async def scenario() -> None:
        async with session(tone, msgpack_mode=True, query=TONE) as client:
            await client.ws.send(frame)
            error = await client.expect("error")
            assert error["code"] == code, error.body
            await assert_still_working(client)

    run(scenario())


# -- 10: limits and closing --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["text", "binary"])
def test_frame_over_max_frame_bytes_closes_with_1009(tone: LiveServer, kind: str) -> None:
    async def scenario() -> None:
        async with session(tone, query=TONE) as client:
            session_id = client.created["session_id"]
            if kind == "text":
                await client.append("a" * (MAX_FRAME + 10))
            else:
                await client.ws.send(b"\x00" * (MAX_FRAME + 10))
            code, _reason = await client.wait_closed()
            assert code == 1009
            assert await eventually(lambda: session_id not in tone.gateway.sessions, timeout=5)

    run(scenario())


def test_max_sessions_refuses_with_1008_and_a_reason() -> None:
    async def scenario(live: LiveServer) -> None:
        async with session(live), session(live):
            async with connect(ws_url(live)) as ws:
                error = json.loads(await asyncio.wait_for(ws.recv(), 5))
                assert error["type"] == "error" and error["code"] == "too_many_sessions"
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)
                assert ws.close_code == 1008
                assert ws.close_reason and "limit" in ws.close_reason
        # Closed sessions give their slots back.
        assert await eventually(lambda: live.gateway.limiter.total == 0, timeout=5)
        async with session(live) as again, session(live):
            await again.speak("Room again.")

    with LiveServer(engines=["tone"], max_sessions=2) as live:
        run(scenario(live))


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"format": "nope"}, "output.encoding"),
        ({"engine": "nope"}, "engine"),
        ({"engine": "tone", "voice": "nobody"}, "voice"),
        ({"engine": "tone", "sample_rate": "abc"}, "sample_rate"),
        ({"engine": "tone", "sample_rate": "100"}, "output.sample_rate"),
    ],
)
def test_bad_query_config_is_an_error_then_1008(tone: LiveServer, query: dict[str, str], field: str) -> None:
    async def scenario() -> None:
        before = tone.gateway.limiter.total
        async with connect(ws_url(tone, **query)) as ws:
            error = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert error["type"] == "error" and error["code"] == "invalid_config"
            assert field in error["message"]
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1008
            assert ws.close_reason
        assert await eventually(lambda: tone.gateway.limiter.total == before, timeout=5), (
            "the refused slot leaks"
        )

    run(scenario())


def test_idle_session_is_closed_with_4408_but_not_while_speaking() -> None:
    async def scenario(live: LiveServer) -> None:
        async with session(live) as client:
            await client.expect("error", timeout=5)
            assert client.events("error")[0]["code"] == "idle_timeout"
            code, _ = await client.wait_closed(5)
            assert code == 4408
        async with session(live) as client:
            text = "Longer than idle."  # ~1 s, paced: twice the idle timeout
            await client.append(text)
            await client.done()
            started = await client.expect("segment.started", timeout=5)
            await client.expect("context.done", timeout=10, context_id=started["context_id"])
            check_context(client, started["context_id"], text)
            code, _ = await client.wait_closed(5)
            assert code == 4408
            assert client.events("error")[-1]["code"] == "idle_timeout"

    with LiveServer(engines=["tone"], idle_timeout_s=0.5) as live:
        run(scenario(live))


def test_session_close_finishes_pending_audio_then_closes_1000(tone: LiveServer) -> None:
    text = "Finish this sentence before you hang up, please. " * 2

    async def scenario() -> None:
        async with session(tone, query=TONE) as client:
            session_id = client.created["session_id"]
            await client.update(output={"lead_ms": 0})
            await client.append(text)  # no text.done: session.close finishes the context
            await client.send("session.close")
            code, _ = await client.wait_closed(15)
            assert code == 1000
            (done,) = client.events("context.done")
            check_context(client, done["context_id"], text)
            assert client.events("speech.interrupted") == []
            assert await eventually(lambda: session_id not in tone.gateway.sessions, timeout=5)

    run(scenario())


def test_an_unknown_websocket_path_is_a_404_that_says_so(tone: LiveServer) -> None:
    """Not the framework's bare 403, which every vendor client reports as a bad API key."""

    async def scenario() -> None:
        for path in ("/v1/realtime/stream-input", "/v1/speak", "/web/ws"):
            with pytest.raises(InvalidStatus) as refused:
                async with connect(tone.url.replace("http://", "ws://") + path):
                    pass
            response = refused.value.response
            assert response.status_code == 404, (path, response.status_code)
            error = json.loads(bytes(response.body or b""))["error"]
            assert (
                error["code"] == "not_found"
                and path in error["message"]
                and "/v1/realtime" in error["message"]
            )

    run(scenario())


def test_api_key_is_required_and_a_refusal_says_why() -> None:
    async def scenario(live: LiveServer) -> None:
        async with session(live, query={"api_key": "sesame"}) as client:
            await client.speak("Key in the query.")
        async with session(live, additional_headers={"Authorization": "Bearer sesame"}) as client:
            await client.speak("Key in the header.")
        for query in ({}, {"api_key": "wrong"}):
            # A refusal must say why: a 1008 close with a reason, or an HTTP error whose body explains.
            try:
                async with connect(ws_url(live, **query)) as ws:
                    with pytest.raises(ConnectionClosed):
                        await asyncio.wait_for(ws.recv(), 5)
                    assert ws.close_code == 1008 and ws.close_reason, (ws.close_code, ws.close_reason)
            except InvalidStatus as exc:
                assert exc.response.status_code in (401, 403)
                assert b"key" in bytes(exc.response.body or b"").lower(), "the refusal does not say why"

    with LiveServer(engines=["tone"], api_keys=["sesame"]) as live:
        run(scenario(live))


# -- 11: a client that stops reading ------------------------------------------------------------------

SLOW_READER_TEXT = "word " * 1800  # 9000 characters per append


async def stop_reading(
    live: LiveServer, context_id: str | None = None, **query: str
) -> tuple[RealtimeClient, Any]:
    """Open a session whose client reads session.created, asks for a huge context, then stops reading
    (max_queue=1: the client library leaves everything else in the socket)."""
    manager = session(live, query=query, max_queue=1, close_timeout=1)
    client = await manager.__aenter__()
    await client.update(output={"lead_ms": 0})
    for _ in range(3):
        await client.append(SLOW_READER_TEXT, context_id)
    await client.done(context_id)
    return client, manager


async def wait_until_stalled(live: LiveServer, session_id: str, timeout: float = 15.0) -> None:
    """Until the server's outbox is full and nothing has left for half a second: the writer is blocked
    on the socket and the speaker on the outbox."""
    sess = live.gateway.sessions[session_id]
    full = sess.outbox.max_audio_frames * FRAME_MS / 1000.0 - 1e-6
    deadline = time.monotonic() + timeout
    sent, since = -1.0, time.monotonic()
    while time.monotonic() < deadline:
        if sess.playout.sent_s != sent or sess.outbox.pending_audio_s < full:
            sent, since = sess.playout.sent_s, time.monotonic()
        elif time.monotonic() - since >= 0.5:
            return
        await asyncio.sleep(0.02)
    pytest.fail("the session never stalled")


def test_slow_reader_bounds_queued_audio_and_pauses_synthesis(lagging: LiveServer) -> None:
    live = lagging

    async def scenario() -> None:
        engine = live.gateway.engines.get("tone")
        client, manager = await stop_reading(live)
        sess = live.gateway.sessions[client.created["session_id"]]
        max_job_s = live.settings.planner.max_chars * MS_PER_CHAR / 1000.0
        queue_bound = live.settings.max_ahead_s + live.settings.planner.max_inflight * max_job_s + 0.5
        outbox_bound = sess.outbox.max_audio_frames * FRAME_MS / 1000.0 + 0.05
        worst_outbox = worst_queue = 0.0
        history: list[float] = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            worst_outbox = max(worst_outbox, sess.outbox.pending_audio_s)
            for slot in list(sess._slots.values()):
                worst_queue = max(worst_queue, slot.context.queued_audio_s())
            history.append(engine.stats.audio_seconds)
            # Stalled: nothing more synthesized for a whole second.
            if len(history) > 25 and history[-1] == history[-26] and sess.outbox.pending_audio_s > 0:
                break
            await asyncio.sleep(0.04)
        else:
            pytest.fail(f"synthesis never paused: {history[-1]:.0f} s of audio")
        assert worst_outbox <= outbox_bound, worst_outbox
        assert worst_queue <= queue_bound, (worst_queue, queue_bound)
        total_audio_s = 3 * len(SLOW_READER_TEXT) * MS_PER_CHAR / 1000.0
        assert engine.stats.audio_seconds < total_audio_s / 3, (
            "the engine must stop long before the text ends"
        )
        assert client.created["session_id"] in live.gateway.sessions, (
            "a slow reader is not closed before send_timeout_s"
        )
        await manager.__aexit__(None, None, None)
        assert await eventually(lambda: client.created["session_id"] not in live.gateway.sessions, timeout=10)

    run(scenario())


def test_slow_reader_is_closed_after_send_timeout() -> None:
    async def scenario(live: LiveServer) -> None:
        engine = live.gateway.engines.get("tone")
        client, manager = await stop_reading(live)
        session_id = client.created["session_id"]
        assert await eventually(lambda: session_id not in live.gateway.sessions, 20), (
            "a client that stops reading must be disconnected"
        )
        produced = engine.stats.audio_seconds
        await asyncio.sleep(0.5)
        assert engine.stats.audio_seconds == produced, "synthesis stops with the session"
        try:
            code, reason = await client.wait_closed(20)
            assert code == 1008 and reason and "reading" in reason, (code, reason)
        finally:
            await manager.__aexit__(None, None, None)

    with LiveServer(engines=["tone"], send_timeout_s=1.0, max_ahead_s=2.0, planner={"max_chars": 60}) as live:
        run(scenario(live))


def test_a_client_flooding_errors_without_reading_is_closed_with_a_reason(lagging: LiveServer) -> None:
    """Every bad message earns an error event; one who never reads them is closed 1008, not left to grow."""

    async def scenario() -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # no autotuning: fills after a few KB
        sock.connect(("127.0.0.1", lagging.port))
        sock.setblocking(False)
        before = set(lagging.gateway.sessions)
        async with connect(ws_url(lagging), sock=sock, max_queue=1, close_timeout=1) as ws:
            assert await eventually(lambda: len(set(lagging.gateway.sessions) - before) == 1)
            (sid,) = set(lagging.gateway.sessions) - before
            # Until the kernel's buffers are full (their size varies by host) and 1,000 errors wait unsent.
            deadline = time.monotonic() + 20
            while sid in lagging.gateway.sessions and time.monotonic() < deadline:
                with contextlib.suppress(ConnectionClosed):
                    for _ in range(2000):
                        await ws.send("{not json")
                await asyncio.sleep(0.05)
            assert sid not in lagging.gateway.sessions, "the flooding session was never closed"
            with contextlib.suppress(ConnectionClosed, TimeoutError):
                while True:
                    await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1008 and "reading its events" in (ws.close_reason or ""), (
                ws.close_code, ws.close_reason,
            )  # fmt: skip

    run(scenario())
    assert httpx.get(f"{lagging.url}/health").status_code == 200


# -- 12: isolation -------------------------------------------------------------------------------------


def test_two_sessions_are_isolated(tone: LiveServer) -> None:
    text = "aaaaaa " * 6

    async def scenario() -> None:
        async with (
            session(tone, query={"engine": "tone", "voice": "low"}) as one,
            session(tone, query={"engine": "tone", "voice": "high"}) as two,
        ):
            for client in (one, two):
                await client.append(LONG if client is one else text, "ctx")
                await client.done("ctx")
            await one.until(lambda i: isinstance(i, Audio))
            await two.until(lambda i: isinstance(i, Audio))
            await one.send("context.cancel", context_id="ctx")

            async def finish_two() -> Event:
                return await two.expect("context.done", context_id="ctx")

            interrupted, done = await asyncio.gather(
                one.expect("speech.interrupted", context_id="ctx"), finish_two()
            )
            assert interrupted["reason"] == "cancel"
            assert two.events("speech.interrupted") == []
            check_context(two, "ctx", text)
            assert abs(peak_hz(pcm_samples(two.audio("ctx")), 24000) - tone_hz("high", "a")) < 20
            assert done["audio_ms"] > 2000

    run(scenario())


@pytest.fixture(scope="module")
def timed_tone() -> Iterator[LiveServer]:
    """The tone engine timing its words (exactly: 60 ms a character)."""
    with LiveServer(engines=["tone"], tone={"timestamps": True}) as live:
        yield live


def test_alignment_events_time_every_word_and_can_be_turned_off(timed_tone: LiveServer) -> None:
    text = "Hello there, my friend. How are you today?"

    async def scenario() -> None:
        async with session(timed_tone) as client:
            assert client.created["alignment"] is True
            done = await client.speak(text)
            words = [w for e in client.events("alignment") for w in e["words"]]
            assert [w["word"] for w in words] == text.split()
            # The first word starts the audio; the last, its punctuation included, ends it.
            assert words[0]["start_ms"] == 0.0 and words[-1]["end_ms"] == pytest.approx(
                done["audio_ms"], abs=0.1
            )
            assert all(a["end_ms"] <= b["start_ms"] for a, b in zip(words, words[1:], strict=False))
            await client.update(alignment=False)
            await client.speak("No timings now.")
            # Nothing more came for the second context.
            assert [w["word"] for e in client.events("alignment") for w in e["words"]] == text.split()

    run(scenario())
