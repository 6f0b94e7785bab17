"""The text front end in a context (`session/front_end.py`, `SpeechContext`): the engine reads
normalized text while `segment.started` shows what was written; modes follow the engine unless
overridden; SSML breaks are real silence, prosody rates become the job's speed where the engine
honours speed; malformed SSML never ends a context."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest

from realtime.control.settings import PlannerSettings
from realtime.engines.base import SynthesisJob
from realtime.engines.tone.engine import ToneEngine
from realtime.engines.tone.settings import ToneSettings
from realtime.session.config import ConfigError, SessionConfig, apply_update
from realtime.session.context import SpeechContext
from realtime.session.events import AudioOut, ContextDone, ContextError, SegmentStarted
from realtime.session.front_end import FrontEnd, resolve
from realtime.text.ssml import BREAK, mark
from realtime.transport.errors import ApiError
from realtime.transport.speech_request import parse_speech_request

RATE = 24000
MS_PER_CHAR = 10.0


class RecordingTone(ToneEngine):
    """The tone engine, keeping every job it was given."""

    def __init__(self, front_end: str = "full", *, speed: bool = True) -> None:
        super().__init__(
            ToneSettings(
                sample_rate=RATE,
                speed=500.0,
                latency_ms=0.0,
                ms_per_char=MS_PER_CHAR,
                text_front_end=front_end,
            )
        )
        caps = dataclasses.replace(self.info.capabilities, speed=speed)
        self.info = dataclasses.replace(self.info, capabilities=caps)
        self.jobs: list[SynthesisJob] = []

    def synthesize(self, job: SynthesisJob):  # type: ignore[no-untyped-def]
        self.jobs.append(job)
        return super().synthesize(job)


def run(engine: RecordingTone, *chunks: str, **options) -> list[object]:  # type: ignore[no-untyped-def]
    async def main() -> list[object]:
        await engine.start()
        try:
            ctx = SpeechContext(
                engine,
                voice="mid",
                planner=PlannerSettings(idle_flush_ms=50.0),
                stretch_pauses=False,
                **options,
            )
            for chunk in chunks:
                ctx.append(chunk)
            ctx.done()
            return [e async for e in ctx.events()]
        finally:
            await engine.stop()

    return asyncio.run(main())


def started(events: list[object]) -> list[str]:
    return [e.text for e in events if isinstance(e, SegmentStarted)]


def audio(events: list[object]) -> np.ndarray:
    return np.concatenate([e.samples for e in events if isinstance(e, AudioOut)])


def test_the_engine_reads_normalized_text_and_segments_show_what_was_written() -> None:
    engine = RecordingTone("full")
    text = "It costs $5.99 on Dec 7, 2026. Call Dr. Smith **now** 🎉"
    events = run(engine, *[text[i : i + 3] for i in range(0, len(text), 3)])
    assert isinstance(events[-1], ContextDone)
    assert " ".join(started(events)) == "It costs $5.99 on Dec 7, 2026. Call Dr. Smith **now** 🎉"
    assert " ".join(j.text for j in engine.jobs) == (
        "It costs five dollars and ninety-nine cents on December seventh, twenty twenty-six. "
        "Call Doctor Smith now"
    )
    # Each segment.started carries what its engine read, with the map back to what was written.
    segments = [e for e in events if isinstance(e, SegmentStarted)]
    assert [e.spoken.text for e in segments if e.spoken] == [j.text for j in engine.jobs]
    assert all(e.spoken is not None and e.spoken.original == e.text for e in segments)
    (priced,) = [e.spoken for e in segments if e.spoken and "ninety-nine" in e.spoken.text]
    at = priced.text.index("ninety-nine")
    lo, hi = priced.to_original(at, at + len("ninety-nine"))
    assert priced.original[lo:hi] == "$5.99"


@pytest.mark.parametrize(
    ("declared", "setting", "read"),
    [("full", "auto", "five dollars"), ("markup", "auto", "$5"), ("off", "auto", "**$5**"),
     ("markup", "full", "five dollars"), ("full", "off", "**$5**")],
)  # fmt: skip
def test_the_mode_follows_the_engine_unless_overridden(declared: str, setting: str, read: str) -> None:
    engine = RecordingTone(declared)
    run(engine, "**$5**", text_mode=setting)
    assert [j.text for j in engine.jobs] == [read]


def test_a_segment_of_emoji_alone_never_reaches_the_engine() -> None:
    engine = RecordingTone("markup")
    events = run(engine, "Done. 🎉🎉 ")
    assert [j.text for j in engine.jobs] == ["Done."]
    assert started(events) == ["Done. 🎉🎉"]  # what was written, emoji and all


def test_an_ssml_break_is_that_much_silence_between_two_pieces() -> None:
    engine = RecordingTone("off")
    plain = audio(run(RecordingTone("off"), "Hello there. General Kenobi."))
    events = run(engine, '<speak>Hello there. <break time="500ms"/>General Kenobi.</speak>', ssml=True)
    assert [j.text for j in engine.jobs] == ["Hello there.", "General Kenobi."]
    assert started(events) == ["Hello there.", "General Kenobi."]
    with_break = audio(events)
    # 500 ms more, less the space the plain text had between the sentences (10 ms of tone audio) and
    # one more 5 ms seam.
    assert with_break.size - plain.size == pytest.approx(0.5 * RATE - 0.015 * RATE, abs=2)
    # The silence sits where the break was: right after the first piece's audio.
    first = int(len("Hello there.") * MS_PER_CHAR / 1000 * RATE)
    gap = with_break[first : first + int(0.45 * RATE)]
    assert np.abs(gap).max() < 1e-3


def test_an_ssml_break_split_across_tokens_is_never_spoken() -> None:
    engine = RecordingTone("full")
    document = '<speak>One, <break time="1s"/>two & three &amp; four.</speak>'
    run(engine, *[document[i : i + 2] for i in range(0, len(document), 2)], ssml=True)
    read = " ".join(j.text for j in engine.jobs)
    assert read == "One, two and three and four."
    assert "<" not in read and "break" not in read


def test_prosody_rate_is_the_job_speed_where_the_engine_honours_speed() -> None:
    document = '<speak>Normal words here. <prosody rate="slow">Slow words here.</prosody> Back again.</speak>'
    engine = RecordingTone("off")
    run(engine, document, ssml=True, speed=1.2)
    assert [(j.text, j.speed) for j in engine.jobs] == [
        ("Normal words here.", 1.2), ("Slow words here.", pytest.approx(0.9)), ("Back again.", 1.2),
    ]  # fmt: skip
    fixed = RecordingTone("off", speed=False)
    run(fixed, document, ssml=True)
    assert {j.speed for j in fixed.jobs} == {1.0}  # ignored, not an error mid-stream


@pytest.mark.parametrize(
    "document", ["<speak><prosody rate='slow'>never closed", "</p>stray <<< > &bogus; text", "<speak><break"]
)
def test_malformed_ssml_never_ends_a_context_with_an_error(document: str) -> None:
    engine = RecordingTone("full")
    events = run(engine, document, ssml=True)
    assert isinstance(events[-1], ContextDone)
    assert not [e for e in events if isinstance(e, ContextError)]
    assert all("<speak" not in j.text and "prosody" not in j.text for j in engine.jobs)


def test_breaks_carry_over_pieces_with_nothing_to_say() -> None:
    front = FrontEnd("full", ssml=True)
    assert front.pieces(f"🎉 {mark(BREAK, 0.3)} ... ", "full") == []
    (piece,) = front.pieces(f"{mark(BREAK, 0.2)} Hi", "full")
    assert piece.pause_s == pytest.approx(0.5) and piece.original == "Hi"


def test_resolve() -> None:
    assert resolve("auto", "markup") == "markup"
    assert resolve("off", "full") == "off"


def test_session_update_takes_normalize_and_ssml() -> None:
    config = apply_update(SessionConfig(), {"normalize": "markup", "ssml": True})
    assert (config.normalize, config.ssml) == ("markup", True)
    assert config.describe()["normalize"] == "markup" and config.describe()["ssml"] is True
    with pytest.raises(ConfigError) as bad_mode:
        apply_update(config, {"normalize": "loud"})
    assert bad_mode.value.field == "normalize"
    with pytest.raises(ConfigError) as bad_flag:
        apply_update(config, {"ssml": "yes"})
    assert bad_flag.value.field == "ssml"


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [({"ssml": True, "input": "<speak>Hi"}, "input", "invalid_ssml"),
     ({"ssml": "yes"}, "ssml", "invalid_type"), ({"normalize": "loud"}, "normalize", "invalid_value")],
)  # fmt: skip
def test_rest_refuses_malformed_ssml_and_bad_switches(body: dict[str, object], param: str, code: str) -> None:
    with pytest.raises(ApiError) as refused:
        parse_speech_request({"model": "tts-1", "voice": "alloy", "input": "Hi", **body}, max_input_chars=100)
    assert (refused.value.status, refused.value.param, refused.value.code) == (400, param, code)
    ok = parse_speech_request(
        {"model": "tts-1", "voice": "alloy", "input": "<speak>Hi</speak>", "ssml": True, "normalize": "off"},
        max_input_chars=100,
    )
    assert (ok.ssml, ok.normalize) == (True, "off")
