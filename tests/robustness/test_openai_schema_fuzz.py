"""OpenAI's `/v1/audio/speech`, fuzzed from its documented shape (schemathesis + Hypothesis).

`openai_speech.openapi.json` describes the operation as OpenAI documents it (fields, types,
enums, ranges). Schemathesis generates bodies that follow it (positive) and bodies that break
it (negative: wrong types, missing fields, out-of-range numbers, unknown enum values, odd
Unicode). Every answer must be a non-5xx; every error must come in OpenAI's error shape; and
every 200 must carry audio: its first chunk is read (the first SSE event's audio, with
`stream_format: sse`) and the stream closed, which cancels the rest of the synthesis.

Deterministic in CI (`derandomize`); `ROBUSTNESS_EXAMPLES=2000` explores further.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from .conftest import GatewayProcess, auth

SPEC = Path(__file__).with_name("openai_speech.openapi.json")
OPERATION = schemathesis.openapi.from_path(SPEC)["/audio/speech"]["POST"]
EXAMPLES = int(os.environ.get("ROBUSTNESS_EXAMPLES", "300"))
SURROGATE = st.integers(0xD800, 0xDFFF).map(chr)
ANY_TEXT = st.text(min_size=1, max_size=300) | st.text(st.characters() | SURROGATE, min_size=1, max_size=30)
"""Arbitrary Unicode, and sometimes lone surrogates (Hypothesis leaves them out of text by default;
JSON carries them as `\\udxxx` escapes)."""
POSITIVE = OPERATION.as_strategy(generation_mode=GenerationMode.POSITIVE)
CASES = st.one_of(POSITIVE, POSITIVE, OPERATION.as_strategy(generation_mode=GenerationMode.NEGATIVE))
"""Documented bodies twice as often as broken ones, so that enough reach synthesis: Hypothesis draws
examples partly from the literals of the code loaded beside it, so the mix moves as the code grows
(one documented to one broken gave 28–31 audio answers of 300)."""


def check_answer(response: httpx.Response) -> None:
    assert response.status_code < 500, response.read()
    if response.status_code != 200:
        error = json.loads(response.read())["error"]
        assert isinstance(error["message"], str) and error["message"]
        assert isinstance(error["type"], str)
        return
    chunks = response.iter_bytes()
    first = next(chunks, b"")
    assert first, "a 200 without audio"
    if response.headers["content-type"].startswith("text/event-stream"):
        while b"\n\n" not in first and (more := next(chunks, b"")):
            first += more  # an event may arrive in several pieces
        event = json.loads(first.split(b"\n\n", 1)[0].removeprefix(b"data: "))
        assert event["type"] == "speech.audio.delta" and base64.b64decode(event["audio"])
    else:
        assert response.headers["content-type"].startswith("audio/"), response.headers


def test_speech_answers_every_documented_or_broken_body_without_5xx_or_empty_audio(
    gateway: GatewayProcess,
) -> None:
    with httpx.Client(timeout=60) as client:

        @settings(
            max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
            suppress_health_check=list(HealthCheck),
        )  # fmt: skip
        @given(
            case=CASES,
            known_names=st.booleans(),
            text=st.none() | ANY_TEXT,
        )
        def answers(case: schemathesis.Case, known_names: bool, text: str | None) -> None:
            request = case.as_transport_kwargs(base_url=f"{gateway.url}/v1")
            headers = {"Content-Type": "application/json", **auth()}  # the body is what is fuzzed here
            body = request.get("json")
            if known_names and isinstance(body, dict):
                # Random model and voice names mostly end in a 404, and generated inputs shrink to "":
                # half the bodies name a real model and voice, and some carry arbitrary Unicode text,
                # so that the rest of the body and odd text reach synthesis (espeak) too.
                body = {**body, "model": "tts-1", "voice": "alloy"}
                if text is not None:
                    body["input"] = text
                elif not (isinstance(body.get("input"), str) and body["input"].strip()):
                    body["input"] = "Hello there."  # shrunk to nothing: give the rest of the body a voice
            content = json.dumps(body).encode() if "json" in request else (request.get("data") or b"")
            with client.stream("POST", request["url"], headers=headers, content=content) as response:
                check_answer(response)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        statuses: dict[int, int] = {}
        answers()
        print("statuses:", dict(sorted(statuses.items())))
        assert statuses.get(200, 0) >= EXAMPLES // 10, f"too few bodies reached synthesis: {statuses}"
