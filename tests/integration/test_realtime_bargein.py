"""Barge-in over the native realtime protocol, with real speech on the uplink.

The uplink is Piper speech from the gateway's own REST API (24 kHz pcm), resampled
and streamed back in 20 ms frames in real time while a long tone context speaks.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from realtime.audio.g711 import mulaw_encode
from realtime.audio.pcm import float_to_int16
from realtime.audio.resample import StreamResampler
from tests.audio_check import piper_speech
from tests.realtime_client import Audio, RealtimeClient, run, session
from tests.server import LiveServer

SPEECH_AT_MS = 500.0  # silence before the uplink speech starts
FRAME_MS = 20
LONG = "This tone context keeps speaking until the listener talks over it. " * 4


@pytest.fixture(scope="module")
def speech_24k(server: LiveServer) -> np.ndarray:
    """Real speech (float32, 24 kHz), synthesized by Piper through the REST API."""
    speech = piper_speech(server.url, "Wait, stop, I have a question!")
    assert speech.size > 24000, "at least a second of speech"
    return speech


def uplink(speech_24k: np.ndarray, encoding: str, rate: int) -> bytes:
    """Silence, the speech, silence; resampled and encoded as the session's input_audio."""
    resampler = StreamResampler(24000, rate)
    speech = np.concatenate([resampler.process(speech_24k), resampler.flush()])
    silence = np.zeros(int(rate * SPEECH_AT_MS / 1000), np.float32)
    pcm = float_to_int16(np.concatenate([silence, speech, np.zeros(int(rate * 0.8), np.float32)]))
    return mulaw_encode(pcm) if encoding == "mulaw" else pcm.astype("<i2").tobytes()


async def stream_realtime(client: RealtimeClient, data: bytes, frame_bytes: int) -> None:
    """Send `data` in 20 ms frames on a real-time schedule."""
    start = time.monotonic()
    for n, offset in enumerate(range(0, len(data), frame_bytes)):
        await client.send_audio(data[offset : offset + frame_bytes])
        delay = start + (n + 1) * FRAME_MS / 1000.0 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


CASES = [
    ("json-pcm16k", False, "pcm", 16000),
    ("msgpack-pcm16k", True, "pcm", 16000),
    ("json-mulaw8k", False, "mulaw", 8000),
]


@pytest.mark.parametrize(
    ("msgpack_mode", "encoding", "rate"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_barge_in_with_real_speech_interrupts_the_speaking_context(
    server: LiveServer, speech_24k: np.ndarray, msgpack_mode: bool, encoding: str, rate: int
) -> None:
    data = uplink(speech_24k, encoding, rate)
    frame_bytes = rate * FRAME_MS // 1000 * (2 if encoding == "pcm" else 1)

    async def scenario() -> None:
        async with session(server, msgpack_mode=msgpack_mode, query={"engine": "tone"}) as client:
            updated = await client.update(input_audio={"encoding": encoding, "sample_rate": rate})
            assert updated["input_audio"] == {"encoding": encoding, "sample_rate": rate}
            assert updated["barge_in"]["enabled"] is True
            await client.append(LONG, "talk")
            await client.done("talk")
            await client.until(lambda i: isinstance(i, Audio) and i.context_id == "talk")
            sender = asyncio.create_task(stream_realtime(client, data, frame_bytes))
            try:
                started = await client.expect("vad.speech_started", timeout=10)
                interrupted = await client.expect("speech.interrupted", timeout=5)
            finally:
                sender.cancel()
            # Speech starts after the leading silence, at most a few frames before the real onset
            # (Piper's own leading silence shifts it later).
            assert SPEECH_AT_MS - FRAME_MS <= started["audio_ms"] <= SPEECH_AT_MS + 600, started.body
            assert interrupted["context_id"] == "talk" and interrupted["reason"] == "barge_in"
            assert client.index(started) < client.index(interrupted)
            received_ms = len(client.audio("talk")) / 48.0
            assert abs(interrupted["sent_ms"] - received_ms) <= FRAME_MS + 0.5, (
                interrupted.body,
                received_ms,
            )
            assert 0 <= interrupted["played_ms"] <= interrupted["sent_ms"]
            assert received_ms < len(LONG) * 60.0 / 2, "the context was cut well before its end"
            late = await client.quiet(0.5)
            assert not [i for i in late if isinstance(i, Audio)], "no audio of the interrupted context"
            assert client.events("context.done", context_id="talk") == []
            # Barge-in interrupts what is speaking, not the session: the next reply is heard in full.
            done = await client.speak("Go on.", "next")
            assert len(client.audio("next")) / 48.0 >= done["audio_ms"]

    run(scenario())


def test_barge_in_disabled_reports_vad_but_keeps_speaking(server: LiveServer, speech_24k: np.ndarray) -> None:
    data = uplink(speech_24k, "pcm", 16000)
    text = "Barge-in is off, so this reply plays to the end."

    async def scenario() -> None:
        async with session(server, query={"engine": "tone"}) as client:
            updated = await client.update(
                input_audio={"encoding": "pcm", "sample_rate": 16000}, barge_in={"enabled": False}
            )
            assert updated["barge_in"]["enabled"] is False
            await client.append(text, "talk")
            await client.done("talk")
            await client.until(lambda i: isinstance(i, Audio))
            for offset in range(0, len(data), 640):  # all at once: VAD runs on audio time, not wall time
                await client.send_audio(data[offset : offset + 640])
            started = await client.expect("vad.speech_started", timeout=10)
            stopped = await client.expect("vad.speech_stopped", timeout=10)
            assert SPEECH_AT_MS - FRAME_MS <= started["audio_ms"] < stopped["audio_ms"]
            assert stopped["audio_ms"] <= len(data) / 32.0
            done = await client.expect("context.done", timeout=10, context_id="talk")
            assert client.events("speech.interrupted") == []
            received_ms = len(client.audio("talk")) / 48.0
            assert done["audio_ms"] <= received_ms < done["audio_ms"] + FRAME_MS + 0.5
            # The VAD events came while the context was still speaking.
            assert client.index(started) < client.index(done)

    run(scenario())


def test_speech_with_nothing_playing_interrupts_nothing(server: LiveServer, speech_24k: np.ndarray) -> None:
    data = uplink(speech_24k, "pcm", 16000)

    async def scenario() -> None:
        async with session(server, query={"engine": "tone"}) as client:
            await client.update(input_audio={"encoding": "pcm", "sample_rate": 16000})
            for offset in range(0, len(data), 640):
                await client.send_audio(data[offset : offset + 640])
            await client.expect("vad.speech_started", timeout=10)
            await client.expect("vad.speech_stopped", timeout=10)
            assert client.events("speech.interrupted") == []
            # The next context is not affected by speech that ended before it.
            done = await client.speak("After you.", "reply")
            assert client.events("speech.interrupted") == []
            assert len(client.audio("reply")) / 48.0 >= done["audio_ms"]

    run(scenario())


def test_barge_in_setting_change_reconfigures_the_detector(
    server: LiveServer, speech_24k: np.ndarray
) -> None:
    """min_speech_ms longer than the whole utterance: the detector must never fire."""
    data = uplink(speech_24k, "pcm", 16000)

    async def scenario() -> None:
        async with session(server, query={"engine": "tone"}) as client:
            await client.update(input_audio={"encoding": "pcm", "sample_rate": 16000})
            updated = await client.update(barge_in={"min_speech_ms": 5000})
            assert updated["barge_in"]["min_speech_ms"] == 5000
            for offset in range(0, len(data), 640):
                await client.send_audio(data[offset : offset + 640])
            late = await client.quiet(0.5)
            assert not [i for i in late if not isinstance(i, Audio)], late
            assert client.events("vad.speech_started") == []

    run(scenario())
