"""The text front end and SSML through a real server on loopback.

The tone engine declares `text_front_end = "full"` here, and its audio is an exact function of the
text it reads (20 ms per character, 5 ms less per seam): how long the audio is tells what the
engine read, while `segment.started` must show what the client wrote. (20 ms, not the tone engine's
default 60: a realtime session's audio is paced at real time, and its answer is 120 characters.)
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from realtime.text.normalize import normalize
from tests.audio_check import decode
from tests.realtime_client import run, session
from tests.server import LiveServer

MS_PER_CHAR = 20.0
SEAM_MS = 5.0


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    with LiveServer(engines=["tone"], tone={"text_front_end": "full", "ms_per_char": MS_PER_CHAR}) as server:
        yield server


def speech(server: LiveServer, text: str, **extra: object) -> httpx.Response:
    body = {"model": "tone", "voice": "mid", "input": text, "response_format": "pcm", **extra}
    return httpx.post(f"{server.url}/v1/audio/speech", json=body, timeout=30)


def test_a_rest_break_is_a_second_of_real_silence(live: LiveServer) -> None:
    plain = speech(live, "<speak>Hello there. General Kenobi.</speak>", ssml=True)
    paused = speech(live, '<speak>Hello there. <break time="1s"/>General Kenobi.</speak>', ssml=True)
    assert plain.status_code == paused.status_code == 200
    before, after = decode(plain.content, "pcm"), decode(paused.content, "pcm")
    # One second more, less what the break replaced: the space between the sentences (a character of
    # tone) and one more 5 ms seam (the break ends a piece).
    assert after.duration_s - before.duration_s == pytest.approx(
        1.0 - MS_PER_CHAR / 1000 - SEAM_MS / 1000, abs=0.001
    )
    # The second is silence, right after "Hello there." (12 characters of tone).
    start = int(12 * MS_PER_CHAR / 1000 * 24000)
    assert abs(after.samples[start : start + int(0.95 * 24000)]).max() < 1e-3


def test_rest_reads_normalized_text_unless_asked_not_to(live: LiveServer) -> None:
    normalized = decode(speech(live, "$5").content, "pcm")  # "five dollars": 12 characters
    raw = decode(speech(live, "$5", normalize="off").content, "pcm")
    assert normalized.duration_s == pytest.approx(12 * MS_PER_CHAR / 1000, abs=0.002)
    assert raw.duration_s == pytest.approx(2 * MS_PER_CHAR / 1000, abs=0.002)


def test_malformed_ssml_is_refused_before_any_audio(live: LiveServer) -> None:
    r = speech(live, "<speak>Hello <prosody rate='slow'>there</speak>", ssml=True)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "invalid_ssml" and error["param"] == "input"
    assert error["type"] == "invalid_request_error"
    assert "</speak> at character 39 comes before </prosody>" in error["message"]


def test_a_realtime_session_shows_what_was_written_and_the_engine_reads_it_normalized(
    live: LiveServer,
) -> None:
    text = "It costs $5.99 on Dec 7, 2026, said Dr. Smith. Visit example.com **now** 🎉"

    async def main() -> None:
        async with session(live, query={"engine": "tone"}) as client:
            for start in range(0, len(text), 4):  # LLM-sized pieces, cut anywhere
                await client.append(text[start : start + 4], "a")
            done = await client.speak("", "a")
            started = client.events("segment.started", context_id="a")
            assert " ".join(e["text"] for e in started) == text
            spoken = [normalize(e["text"]).text for e in started]
            assert "five dollars and ninety-nine cents" in " ".join(spoken)
            expected_ms = sum(len(s) for s in spoken) * MS_PER_CHAR - SEAM_MS * (len(started) - 1)
            assert done["audio_ms"] == pytest.approx(expected_ms, abs=1.0)

    run(main())


def test_a_realtime_session_speaks_streamed_ssml(live: LiveServer) -> None:
    document = '<speak>One. <break time="500ms"/><say-as interpret-as="characters">API</say-as> two.</speak>'

    async def main() -> None:
        async with session(live, query={"engine": "tone"}) as client:
            updated = await client.update(ssml=True)
            assert updated["ssml"] is True
            for start in range(0, len(document), 3):
                await client.append(document[start : start + 3], "a")
            done = await client.speak("", "a")
            texts = [e["text"] for e in client.events("segment.started", context_id="a")]
            assert "".join(texts).find("<") < 0
            assert " ".join(texts) == "One. A-P-I two."
            spoken = " ".join(normalize(t).text for t in texts)
            assert spoken == "One. A P I two."
            assert done["audio_ms"] >= 500 + len("One.A P I two.") * MS_PER_CHAR - 3 * SEAM_MS

    run(main())
