"""SpeechContext with the tone engine: ordering, incremental text, cancel, backpressure."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest

from realtime.control.settings import PlannerSettings
from realtime.engines.base import EngineInfo, EngineStats, SchedulingHints, SynthesisJob, Voice
from realtime.engines.tone.engine import ToneEngine
from realtime.engines.tone.settings import ToneSettings
from realtime.session.clock import FakeClock
from realtime.session.context import SpeechContext
from realtime.session.events import AudioOut, ContextDone, SegmentDone, SegmentStarted, WordsOut

RATE = 24000


def make(speed: float = 200.0, **kwargs) -> tuple[ToneEngine, SpeechContext]:  # type: ignore[no-untyped-def]
    engine = ToneEngine(ToneSettings(sample_rate=RATE, speed=speed, latency_ms=0.0, chunk_ms=50.0))
    planner = kwargs.pop("planner", PlannerSettings(idle_flush_ms=100.0))
    return engine, SpeechContext(engine, voice="mid", planner=planner, **kwargs)


async def collect(ctx: SpeechContext) -> list[object]:
    return [e async for e in ctx.events()]


def test_events_come_in_order_and_audio_matches_the_text() -> None:
    async def main() -> None:
        engine, ctx = make()
        await engine.start()
        text = "First clause here, then a sentence. And another one follows it! Last words"
        ctx.append(text)
        ctx.done()
        events = await collect(ctx)
        await engine.stop()
        assert isinstance(events[-1], ContextDone) and not events[-1].cancelled
        started = [e for e in events if isinstance(e, SegmentStarted)]
        done = [e for e in events if isinstance(e, SegmentDone)]
        assert [e.segment_id for e in started] == list(range(len(started))) == [e.segment_id for e in done]
        assert len(started) >= 2, "the first segment is cut early"
        assert len(started[0].text) <= 60
        assert " ".join(e.text for e in started) == text
        # Each segment's audio follows its start and precedes its done.
        current = None
        for e in events:
            if isinstance(e, SegmentStarted):
                current = e.segment_id
            elif isinstance(e, SegmentDone):
                assert e.segment_id == current
            elif isinstance(e, AudioOut):
                assert current is not None
        audio = np.concatenate([e.samples for e in events if isinstance(e, AudioOut)])
        seams = len(started) - 1
        spoken = sum(len(e.text) for e in started)
        assert audio.size == spoken * int(RATE * 0.06) - seams * ctx.stitcher.fade
        assert events[-1].audio_ms == pytest.approx(audio.size * 1000 / RATE)

    asyncio.run(main())


def test_incremental_text_speaks_first_clause_before_the_rest_arrives() -> None:
    async def main() -> None:
        engine, ctx = make()
        await engine.start()
        events = ctx.events()
        ctx.append("Hello there, my")
        first = await asyncio.wait_for(events.__anext__(), 5)
        assert isinstance(first, SegmentStarted) and first.text == "Hello there,"
        ctx.append(" friend. How are you?")
        ctx.done()
        rest = [e async for e in events]
        texts = [e.text for e in rest if isinstance(e, SegmentStarted)]
        assert " ".join(texts) == "my friend. How are you?"
        await engine.stop()

    asyncio.run(main())


def test_idle_token_stream_flushes_pending_words() -> None:
    async def main() -> None:
        engine, ctx = make(planner=PlannerSettings(idle_flush_ms=50.0))
        await engine.start()
        events = ctx.events()
        ctx.append("no punctuation at all ")  # nothing more arrives for a while
        first = await asyncio.wait_for(events.__anext__(), 5)
        assert isinstance(first, SegmentStarted) and first.text == "no punctuation at all"
        ctx.cancel()
        await events.aclose()
        await engine.stop()

    asyncio.run(main())


def test_flush_speaks_what_is_buffered() -> None:
    async def main() -> None:
        engine, ctx = make(planner=PlannerSettings(idle_flush_ms=60_000.0))
        await engine.start()
        events = ctx.events()
        ctx.append("a tiny fragment")
        ctx.flush()
        first = await asyncio.wait_for(events.__anext__(), 5)
        assert isinstance(first, SegmentStarted) and first.text == "a tiny fragment"
        ctx.done()
        assert isinstance([e async for e in events][-1], ContextDone)
        await engine.stop()

    asyncio.run(main())


def test_cancel_stops_engine_work_and_audio() -> None:
    async def main() -> None:
        engine, ctx = make(speed=5.0)
        await engine.start()
        ctx.append("word " * 400)
        ctx.done()
        got_audio = False
        after_cancel: list[object] = []
        async for event in ctx.events():
            if ctx.cancelled:
                after_cancel.append(event)
            elif isinstance(event, AudioOut):
                got_audio = True
                ctx.cancel()
        assert got_audio
        # Only the short fade-out and the final event come after the cancel.
        fades = [e for e in after_cancel if isinstance(e, AudioOut)]
        assert sum(e.samples.size for e in fades) <= RATE // 100
        assert isinstance(after_cancel[-1], ContextDone) and after_cancel[-1].cancelled
        for _ in range(100):
            if engine.stats.jobs_started == engine.stats.jobs_completed + engine.stats.jobs_cancelled:
                break
            await asyncio.sleep(0.01)
        assert engine.stats.jobs_cancelled >= 1
        assert engine.stats.chars < 400 * 5 / 2
        await engine.stop()

    asyncio.run(main())


def test_slow_reader_pauses_synthesis_with_bounded_memory() -> None:
    async def main() -> None:
        engine, ctx = make(speed=500.0, max_ahead_s=2.0)
        await engine.start()
        ctx.append("many words in a very long text. " * 200)  # ~380 s of audio
        ctx.done()
        events = ctx.events()
        await events.__anext__()
        await asyncio.sleep(0.5)  # the reader stalls; a fast engine could have made it all by now
        queued = ctx.queued_audio_s()
        produced = engine.stats.audio_seconds
        assert queued < 2.0 + 2 * 300 * 0.06, queued  # the limit plus at most the jobs in flight
        assert produced < 60
        await asyncio.sleep(0.2)
        assert engine.stats.audio_seconds == produced, "synthesis is paused"
        await events.aclose()
        await engine.stop()

    asyncio.run(main())


def test_append_after_done_is_refused() -> None:
    engine, ctx = make()
    ctx.done()
    with pytest.raises(ValueError):
        ctx.append("late")


class ScriptedEngine:
    """An engine whose every job yields exactly the audio the test feeds it, when it feeds it.

    It reports itself saturated, so a context queues its second job at once."""

    def __init__(self, audio_per_char_s: float) -> None:
        self.info = EngineInfo(
            name="scripted", sample_rate=RATE, voices=(Voice("v", "v"),), default_voice="v",
            hints=SchedulingHints(audio_per_char_s=audio_per_char_s),
        )  # fmt: skip
        self.stats = EngineStats()
        self.ready, self.queue_depth, self.load, self.capacity = True, 0, 2.0, 1
        self.jobs: list[SynthesisJob] = []
        self.feeds: list[asyncio.Queue[np.ndarray | None]] = []

    def synthesize(self, job: SynthesisJob):  # type: ignore[no-untyped-def]
        feed: asyncio.Queue[np.ndarray | None] = asyncio.Queue()
        self.jobs.append(job)
        self.feeds.append(feed)
        return self._stream(feed)

    async def _stream(self, feed: asyncio.Queue[np.ndarray | None]):  # type: ignore[no-untyped-def]
        while (chunk := await feed.get()) is not None:
            yield chunk


async def settle_until(condition) -> None:  # type: ignore[no-untyped-def]
    """Let the loop run (no time passes on the fake clock) until `condition()` holds."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the context never got there")


async def _two_jobs_queued() -> tuple[
    FakeClock, ScriptedEngine, SpeechContext, list[object], asyncio.Task[None]
]:
    """A context at t=100 on a scripted engine, read by a collecting consumer, its whole text cut into
    two waiting jobs: "Hello there," and "my good friend."."""
    clock = FakeClock(100.0)
    engine = ScriptedEngine(audio_per_char_s=0.1)
    ctx = SpeechContext(engine, voice="v", planner=PlannerSettings(first_deadline_ms=250.0), clock=clock)
    ctx.append("Hello there, my good friend.")
    ctx.done()
    events: list[object] = []
    consumer = asyncio.create_task(_collect_into(ctx, events))
    await settle_until(lambda: len(engine.jobs) == 2)
    return clock, engine, ctx, events, consumer


async def _first_job_yields(
    clock: FakeClock, engine: ScriptedEngine, ctx: SpeechContext, audio_s: float
) -> None:
    """0.1 s later the first job ends with `audio_s` of audio, which the consumer takes (playback starts)."""
    clock.advance(0.1)
    engine.feeds[0].put_nowait(np.zeros(int(RATE * audio_s), np.float32))
    engine.feeds[0].put_nowait(None)
    await settle_until(lambda: ctx.playout.ends_at() is not None and engine.jobs[1].deadline < 101.0)


def test_waiting_jobs_deadlines_follow_the_audio_ahead_of_them() -> None:
    """A job's deadline is its latest start: when the audio ahead of it runs out (predicted while the
    job ahead runs, then what that job really yielded) less its own synthesis time (the engine's
    nominal 10x real time here: 0.1 s per second of audio)."""

    async def main() -> None:
        clock, engine, ctx, events, consumer = await _two_jobs_queued()
        first, second = engine.jobs
        assert first.text == "Hello there,"
        # Nothing plays yet: the first is due first_deadline_ms after the cut, less 1.2 s / 10.
        assert first.deadline == pytest.approx(100.25 - 0.12)
        # The second: after the first's predicted 1.2 s of audio, less its own 1.5 s / 10.
        assert second.text == "my good friend."
        assert second.deadline == pytest.approx(100.25 + 1.2 - 0.15)
        await _first_job_yields(clock, engine, ctx, 0.3)  # only 0.3 s, not 1.2
        # Playback started at 100.1 with 0.3 s (less the crossfade the stitcher holds back for the seam).
        # (The first job's real audio also taught the model: the second's prediction shrank a little.)
        synthesis = ctx.planner.predict_audio_s(len(second.text)) / 10.0
        assert second.deadline == pytest.approx(100.1 + 0.3 - synthesis, abs=0.01)
        engine.feeds[1].put_nowait(None)
        await asyncio.wait_for(consumer, 5)
        assert isinstance(events[-1], ContextDone)

    asyncio.run(main())


def test_held_playback_counts_deadlines_from_the_real_start() -> None:
    """A consumer that holds the first audio back (a startup hold) starts playback later than the
    emit: until it releases, the next job's deadline counts from the hold's latest end, then from
    the release, never from the emit (which would make a held context look urgent)."""

    async def main() -> None:
        clock, engine, ctx, events, consumer = await _two_jobs_queued()
        second = engine.jobs[1]
        await _first_job_yields(clock, engine, ctx, 0.3)
        synthesis = ctx.planner.predict_audio_s(len(second.text)) / 10.0
        held = ctx.playout.sent_s  # 0.3 s less the crossfade the stitcher keeps for the seam
        assert second.deadline == pytest.approx(100.1 + held - synthesis)  # playing since the emit

        ctx.hold_playback(until=100.7)
        await settle_until(lambda: second.deadline > 100.5)
        assert ctx.playout.ends_at() is None, "nothing plays while the audio is held"
        assert second.deadline == pytest.approx(100.7 + held - synthesis)
        assert ctx.buffered_s() >= held, "held audio still counts as buffered for chunk sizing"

        clock.advance(0.2)
        ctx.release_playback()
        await settle_until(lambda: second.deadline < 100.5)
        assert ctx.playout.ends_at() == pytest.approx(100.3 + held)
        assert second.deadline == pytest.approx(100.3 + held - synthesis)
        engine.feeds[1].put_nowait(None)
        await asyncio.wait_for(consumer, 5)
        assert isinstance(events[-1], ContextDone)

    asyncio.run(main())


async def _collect_into(ctx: SpeechContext, events: list[object]) -> None:
    async for event in ctx.events():
        events.append(event)


def test_a_long_job_is_never_due_before_the_short_one_ahead_of_it() -> None:
    """Latest starts alone would put a long second job (much synthesis) before a short first one."""

    async def main() -> None:
        clock = FakeClock(100.0)
        engine = ScriptedEngine(audio_per_char_s=0.1)
        slow = dataclasses.replace(engine.info.hints, nominal_speed=1.0)  # a slow engine: 1x real time
        engine.info = dataclasses.replace(engine.info, hints=slow)
        planner = PlannerSettings(first_deadline_ms=250.0, first_max_chars=12, loaded_first_max_chars=12)
        ctx = SpeechContext(engine, voice="v", planner=planner, clock=clock)
        ctx.append("Hi, and then a much longer sentence follows here.")
        ctx.done()
        consumer = asyncio.create_task(_collect_into(ctx, []))
        await settle_until(lambda: len(engine.jobs) == 2)
        first, second = engine.jobs
        assert (first.text, second.text) == ("Hi,", "and then")  # never cut after the article "a"
        # Unclamped, at 0.1 s of audio per character and 1x: the first is due at 100.25 - 0.3; the
        # second after the first's 0.3 s, less its own 0.8 s of synthesis: 100.25 + 0.3 - 0.8 = 99.75.
        assert second.deadline == pytest.approx(99.75)
        assert first.deadline == pytest.approx(99.75)  # clamped: the short one is due no later
        ctx.cancel()
        await asyncio.wait_for(consumer, 5)

    asyncio.run(main())


def test_the_pause_after_a_sentence_stretches_with_silence_while_the_next_segment_synthesizes() -> None:
    """The listener has heard everything (the clock jumps past the first segment's audio) and the
    second segment is still synthesizing (300 ms): `sentence_pause_ms` of silence goes out first, a
    step at a time as the listener is about to run dry, as part of the second segment, and is
    counted; then its audio."""

    async def main() -> None:
        clock = FakeClock()
        engine = ToneEngine(ToneSettings(sample_rate=RATE, speed=200.0, latency_ms=300.0, chunk_ms=50.0))
        ctx = SpeechContext(
            engine, voice="mid", planner=PlannerSettings(sentence_pause_ms=400.0), clock=clock
        )
        await engine.start()
        ctx.append("One sentence here. Then more words")
        ctx.done()
        events = ctx.events()
        seen = []
        async for event in events:
            seen.append(event)
            if isinstance(event, SegmentDone) and event.segment_id == 0:
                clock.advance(10.0)  # the listener ran dry long ago
            elif isinstance(event, AudioOut) and clock.now() > 0:
                clock.advance(event.samples.size / RATE)  # from now on it hears each step as it comes
            if isinstance(event, SegmentDone) and event.segment_id == 1:
                break
        await events.aclose()
        await engine.stop()
        second = seen.index(next(e for e in seen if isinstance(e, SegmentStarted) and e.segment_id == 1))
        audio = np.concatenate([e.samples for e in seen[second:] if isinstance(e, AudioOut)])
        fade = ctx.stitcher.fade  # the first segment's held tail, faded into the silence
        first_sound = fade + int(np.flatnonzero(np.abs(audio[fade:]) > 1e-6)[0])
        assert first_sound == pytest.approx(0.4 * RATE, abs=fade + 1)
        assert ctx.stats.pauses_stretched == 1
        assert ctx.stats.pause_stretch_s == pytest.approx(0.4)

    asyncio.run(main())


def test_mid_phrase_cuts_are_counted_unless_the_segment_ends_the_context() -> None:
    async def main() -> None:
        engine, ctx = make()
        await engine.start()
        events = ctx.events()
        ctx.append("I can help")
        ctx.flush()
        assert isinstance(await asyncio.wait_for(events.__anext__(), 5), SegmentStarted)
        ctx.append(" with that. And more")
        ctx.done()
        started = [e.text for e in [e async for e in events] if isinstance(e, SegmentStarted)]
        await engine.stop()
        assert started == ["with that. And more"] or started == ["with that.", "And more"]
        assert ctx.stats.mid_phrase_cuts == 1  # "I can help" only: "And more" ends the context

    asyncio.run(main())


def test_word_timings_are_placed_in_the_contexts_audio_across_seams() -> None:
    """An engine that times words (the tone engine, exactly): each `WordsOut` comes before the audio of
    its words, offsets index its segment's text, and times land on the words' own tones in the
    stitched audio, seams (which overlap `fade` samples) included."""

    async def main() -> None:
        engine = ToneEngine(
            ToneSettings(sample_rate=RATE, speed=200.0, latency_ms=0.0, chunk_ms=50.0, timestamps=True)
        )
        ctx = SpeechContext(engine, voice="mid", planner=PlannerSettings(idle_flush_ms=100.0))
        await engine.start()
        text = "First clause here, then a sentence. And another one follows it! Last words"
        ctx.append(text)
        ctx.done()
        events = await collect(ctx)
        await engine.stop()
        started = {e.segment_id: e.text for e in events if isinstance(e, SegmentStarted)}
        assert len(started) >= 2
        words = [(e.segment_id, w) for e in events if isinstance(e, WordsOut) for w in e.words]
        assert [w.word for _, w in words] == text.split()
        for segment, w in words:
            assert started[segment][w.char_start : w.char_end] == w.word
        audio = np.concatenate([e.samples for e in events if isinstance(e, AudioOut)])
        ms_per_sample = 1000.0 / RATE
        previous = 0.0
        for _, w in words:
            assert previous <= w.start_ms < w.end_ms
            previous = w.end_ms
            inside = round((w.start_ms + 2.0) / ms_per_sample)  # a tone sounds just after the start
            assert np.abs(audio[inside : inside + 24]).max() > 0.05, w
            before = round((w.start_ms - 2.0) / ms_per_sample)  # a space (silence) just before it
            if w.char_start > 0:  # (a segment's first word follows the last one's punctuation)
                assert np.abs(audio[before - 24 : before]).max() < 0.05, w
        assert words[-1][1].end_ms == pytest.approx(audio.size * ms_per_sample, abs=0.1)
        # Each word's timings come before the audio that speaks it.
        sent = 0
        for e in events:
            if isinstance(e, AudioOut):
                sent += e.samples.size
            elif isinstance(e, WordsOut):
                assert e.words[0].start_ms >= sent * ms_per_sample - 6.0  # a seam's held 5 ms at most

    asyncio.run(main())
