"""A whole `RealtimeSession` without sockets: contexts, pacing, interruption, slow writers.

Each test drives the session core directly (tests/session_harness.py): a scripted engine
that synthesizes at once, a transport that records what it is handed, and a `FakeClock`
that moves only when the test says. What a client would see is asserted exactly, and
timing is asserted against the fake clock, so nothing here is flaky or slow.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from realtime.session.errors import ClientError
from realtime.session.limits import SessionLimits
from realtime.session.outbox import MAX_AUDIO_FRAMES, MAX_AUDIO_S, OutboxOverflow
from realtime.session.server_events import error
from tests.session_harness import FRAME_MS, RATE, ScriptedEngine, SessionHarness, voiced

UNPACED = {"output": {"lead_ms": 0}}
LONG = "This answer goes on for a good while, so that it is still speaking when it is cut off. " * 4


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_two_contexts_speak_in_order_with_every_sample_in_whole_frames() -> None:
    async def scenario() -> None:
        async with SessionHarness(preset=UNPACED) as h:
            s, t = h.session, h.transport
            assert s.append("First, the opening words of the answer.", "a") == "a"
            s.append("Then a second answer,", "b")
            s.append(" appended in two parts.", "b")
            s.done("a")
            s.done("b")
            await h.until(lambda: bool(t.events("context.done", context_id="b")))
            kinds = [(x.type, x.context_id or (x.event or {}).get("context_id")) for x in t.sent]
            last_a = max(i for i, k in enumerate(kinds) if k[1] == "a")
            first_b = min(i for i, k in enumerate(kinds) if k[1] == "b")
            assert last_a < first_b, "contexts speak one at a time, in the order they were opened"
            for ctx, text in (("a", "First, the opening words of the answer."),
                              ("b", "Then a second answer, appended in two parts.")):  # fmt: skip
                started = t.events("segment.started", context_id=ctx)
                assert " ".join(e["text"] for e in started) == text
                assert [e["segment_id"] for e in started] == list(range(len(started)))
                assert len(t.events("segment.done", context_id=ctx)) == len(started)
                done = t.events("context.done", context_id=ctx)[0]
                assert t.index("context.done", context_id=ctx) > max(
                    i for i, x in enumerate(t.sent) if x.context_id == ctx
                ), "context.done comes after all of the context's audio"
                # Every synthesized sample went out, the last frame padded with silence.
                assert 0 <= t.audio_ms(ctx) - done["audio_ms"] < FRAME_MS
                assert all(len(f.audio) == FRAME_MS * RATE * 2 / 1000 for f in t.frames(ctx))
            await h.finish()
            assert s.speaking, "sent at once, but the listener is still hearing it"
            h.clock.advance(10.0)
            assert not s.speaking

    run(scenario())


def test_frames_are_released_in_time_with_the_clock_never_more_than_lead_ms_ahead() -> None:
    lead_ms = 100.0

    async def scenario() -> None:
        async with SessionHarness(preset={"output": {"lead_ms": lead_ms}}) as h:
            s, t = h.session, h.transport
            s.append(LONG, "a")
            s.done("a")
            await h.until(lambda: bool(t.frames()))
            await h.settle()
            start = t.frames()[0].at
            assert t.audio_ms() == lead_ms, "the lead fills at once, and no more"
            leads: list[float] = []

            def check() -> None:
                elapsed_ms = (h.clock.now() - start) * 1000.0
                leads.append(t.audio_ms() - elapsed_ms)

            await h.advance(2.0, each=check)
            assert max(leads) <= lead_ms + 1e-6, "never more than lead_ms ahead of playback"
            assert min(leads) >= lead_ms - 2 * FRAME_MS - 1e-6, "topped up a frame at a time: never runs dry"
            for k, frame in enumerate(t.frames()):
                assert frame.at >= start + (k * FRAME_MS - lead_ms) / 1000.0 - 1e-9, f"frame {k} left early"
            assert s.playout.underruns == 0

    run(scenario())


def test_cancel_stops_the_audio_with_a_short_fade_and_reports_what_was_heard() -> None:
    async def scenario() -> None:
        async with SessionHarness() as h:  # the default lead: 300 ms
            s, t = h.session, h.transport
            s.append(LONG, "a")
            s.done("a")
            await h.until(lambda: bool(t.frames()))
            await h.advance(0.5)
            assert s.speaking
            frames_before = len(t.frames("a"))
            assert s.interrupt("cancel", "a") == ["a"]
            await h.settle()
            (event,) = t.events("speech.interrupted")
            assert event == {"type": "speech.interrupted", "context_id": "a", "reason": "cancel",
                             "sent_ms": t.audio_ms("a"), "played_ms": 500.0}  # fmt: skip
            # One more frame went out: the audio that was due next, faded to silence within 10 ms.
            fade = np.frombuffer(t.frames("a")[-1].audio, "<i2")
            assert len(t.frames("a")) == frames_before + 1
            assert not fade[int(RATE * 0.010) :].any()
            assert t.index("speech.interrupted") > max(i for i, x in enumerate(t.sent) if x.context_id == "a")
            sent = len(t.sent)
            await h.advance(1.0)
            assert len(t.sent) == sent, "nothing of an interrupted context follows its speech.interrupted"
            assert not s.speaking and t.events("context.done") == []
            assert h.engine.jobs[-1].cancel.cancelled, "synthesis was cancelled"
            # The listener dropped its buffer: the next answer is not paced behind it.
            assert s.playout.lead_s(h.clock.now()) == 0.0
            assert s.interrupt("cancel", "a") == [], "finished: nothing left to stop"

    run(scenario())


def test_played_ms_is_the_clients_own_report_when_it_sends_one() -> None:
    async def scenario() -> None:
        async with SessionHarness() as h:
            s, t = h.session, h.transport
            s.append(LONG, "a")
            s.done("a")
            await h.until(lambda: bool(t.frames()))
            await h.advance(0.4)
            s.playback_position("a", 250.0)
            s.playback_position(None, 180.0)  # the oldest context: a; reports never move back
            s.interrupt("cancel")
            await h.settle()
            assert t.events("speech.interrupted")[0]["played_ms"] == 250.0

    run(scenario())


def test_barge_in_from_uplink_speech_interrupts_and_nothing_of_the_context_follows() -> None:
    preset = {"input_audio": {"encoding": "pcm", "sample_rate": 16000}}

    async def scenario() -> None:
        async with SessionHarness(preset=preset) as h:
            s, t = h.session, h.transport
            s.append(LONG, "a")
            s.done("a")
            await h.until(lambda: bool(t.frames()))
            await h.advance(0.3)
            uplink = np.concatenate([np.zeros(8000, np.int16), voiced(1.0)]).tobytes()
            chunk = 640  # 20 ms of 16 kHz s16le, in real time
            for start in range(0, len(uplink), chunk):
                s.feed_uplink(uplink[start : start + chunk])
                await h.advance(0.02, step_s=0.02)
                if t.events("speech.interrupted"):
                    break
            started = t.index("vad.speech_started")
            interrupted = t.index("speech.interrupted", context_id="a", reason="barge_in")
            assert started < interrupted
            assert t.sent[started].event == {"type": "vad.speech_started", "audio_ms": 500.0}
            sent = len(t.sent)
            await h.advance(0.5)
            assert not [x for x in t.sent[sent:] if x.context_id == "a"]
            assert not s.speaking

    run(scenario())


def test_speech_with_nothing_playing_interrupts_nothing() -> None:
    preset = {"input_audio": {"encoding": "pcm", "sample_rate": 16000}}

    async def scenario() -> None:
        async with SessionHarness(preset=preset) as h:
            h.session.feed_uplink(voiced(0.5).tobytes())
            await h.settle()
            assert h.transport.events("vad.speech_started")
            assert h.transport.events("speech.interrupted") == []
            with pytest.raises(ClientError, match="input_audio"):
                h.session.update({"input_audio": None})
                h.session.feed_uplink(b"\0\0")

    run(scenario())


def test_a_context_still_playing_after_its_last_frame_is_interrupted_until_played_out() -> None:
    """All of a short answer is sent at once (it fits in lead_ms), but the listener is still hearing
    it: a cancel must still reach it, after its context.done, so the client drops its buffer."""

    async def scenario() -> None:
        async with SessionHarness() as h:
            s, t = h.session, h.transport
            s.append("Okay then.", "a")  # 100 ms of audio: under the 300 ms lead
            s.done("a")
            await h.until(lambda: bool(t.events("context.done")))
            await h.advance(0.05)
            assert s.speaking
            assert s.interrupt("cancel") == ["a"]
            await h.settle()
            assert t.index("speech.interrupted", context_id="a") > t.index("context.done", context_id="a")
            s.append("And again.", "b")
            s.done("b")
            await h.until(lambda: bool(t.events("context.done", context_id="b")))
            await h.advance(0.2)  # b played out by the clock
            assert not s.speaking
            assert s.interrupt("cancel") == []

    run(scenario())


def test_a_stalled_writer_bounds_the_queue_and_pauses_synthesis_then_times_out() -> None:
    async def scenario() -> None:
        h = SessionHarness(preset=UNPACED, max_ahead_s=2.0, send_timeout_s=10.0)
        h.transport.stall()
        async with h:
            s, t = h.session, h.transport
            s.append(LONG * 3, "a")  # about 80 s of audio
            s.done("a")
            await h.settle(5000)
            produced = h.engine.produced_s
            assert t.sent == [] and t.blocked == 1, "the first send is stuck; nothing else is attempted"
            queued_frames = len(s.outbox) - len(s.outbox.events())
            assert s.outbox.pending_audio_s <= MAX_AUDIO_S and queued_frames <= MAX_AUDIO_FRAMES
            assert produced < 10.0, "synthesis stops once max_ahead_s waits for the reader"
            await h.settle(5000)
            assert h.engine.produced_s == produced, "and stays stopped"
            await h.advance(9.0, step_s=1.0)
            assert h.task is not None and not h.task.done()
            await h.advance(2.5, step_s=0.5)  # the stalled send is past send_timeout_s on the clock
            await h.until(h.task.done)
            with pytest.raises(TimeoutError, match="not reading"):
                h.task.result()
            assert s.closed.is_set() and h.engine.jobs[-1].cancel.cancelled

    run(scenario())


def test_a_writer_that_catches_up_gets_everything_in_order() -> None:
    async def scenario() -> None:
        h = SessionHarness(preset=UNPACED, max_ahead_s=1.0)
        h.transport.stall()
        async with h:
            s, t = h.session, h.transport
            s.append(LONG, "a")
            s.append("And a last word.", "b")
            s.done("a")
            s.done("b")
            await h.settle(3000)
            t.resume()
            await h.until(lambda: bool(t.events("context.done", context_id="b")))
            for ctx in ("a", "b"):
                done = t.events("context.done", context_id=ctx)[0]
                assert 0 <= t.audio_ms(ctx) - done["audio_ms"] < FRAME_MS, "no frame lost to the stall"
            await h.finish()

    run(scenario())


def test_a_client_that_leaves_its_events_unread_ends_the_session() -> None:
    async def scenario() -> None:
        h = SessionHarness(limits=SessionLimits(max_queued_events=50))
        h.transport.stall()
        async with h:
            for n in range(60):
                h.session.emit(error("unknown_context", f"no open context 'c{n}'"))
            await h.until(lambda: h.task is not None and h.task.done())
            assert h.task is not None
            with pytest.raises(OutboxOverflow):
                h.task.result()

    run(scenario())


def test_a_saturated_engine_holds_the_first_audio_until_the_second_segment_or_the_clock() -> None:
    async def scenario() -> None:
        engine = ScriptedEngine(load=2.0, hold_from=1)  # busy; every job after the first waits
        async with SessionHarness(engine=engine, start_hold_s=1.0) as h:
            s, t = h.session, h.transport
            s.append("Hello there, and here is the rest of what I wanted to say.", "a")
            s.done("a")
            await h.until(lambda: len(engine.jobs) >= 2)
            await h.settle(2000)
            assert t.frames() == [] and t.events("segment.done") == [], "audio and what follows it held back"
            await h.advance(0.9)
            assert t.frames() == []
            await h.advance(0.1)  # the hold's limit on the clock
            assert t.frames(), "released"
            first_audio = min(i for i, x in enumerate(t.sent) if x.event is None)
            assert (
                t.index("segment.started", segment_id=0) < first_audio < t.index("segment.done", segment_id=0)
            )
            engine.release()
            await h.advance(1.0)  # paced: the rest plays out
            assert t.events("context.done")

    run(scenario())


def test_a_context_filling_the_engine_with_its_own_jobs_is_not_held() -> None:
    async def scenario() -> None:
        engine = ScriptedEngine(load=0.0, hold_from=1)  # one worker, nobody else: its own job fills it
        async with SessionHarness(engine=engine, start_hold_s=1.0) as h:
            s, t = h.session, h.transport
            s.append("Hello there, and here is the rest of what I wanted to say.", "a")
            s.done("a")
            await h.until(lambda: bool(t.frames()))
            assert h.clock.now() - 100.0 < 0.1, "first audio at once: its own lookahead is no saturation"
            engine.release()
            await h.advance(6.0)
            assert t.events("context.done")

    run(scenario())


@pytest.mark.parametrize(
    "parts", [["\N{GRINNING FACE}"], ["Hello there. ", "\N{EMOJI MODIFIER FITZPATRICK TYPE-1-2}"], ["... !"]]
)
def test_a_context_whose_text_says_nothing_at_the_end_still_finishes(parts: list[str]) -> None:
    async def scenario() -> None:
        async with SessionHarness() as h:
            s, t = h.session, h.transport
            for part in parts:  # the emoji comes after the first segment has started: a segment alone
                s.append(part, "a")
                await h.advance(0.5)
            s.done("a")
            await h.advance(5.0)
            (done,) = t.events("context.done")
            spoken = [e["text"] for e in t.events("segment.started")]
            assert spoken == [p.strip() for p in parts[:-1]], spoken
            assert (done["audio_ms"] > 0) == bool(spoken)

    run(scenario())


def test_a_context_left_open_is_finished_when_a_later_one_waits() -> None:
    async def scenario() -> None:
        async with SessionHarness(limits=SessionLimits(context_timeout_s=2.0)) as h:
            s, t = h.session, h.transport
            s.append("An agent that only flushes.", "a")
            s.flush("a")
            s.append("The next answer.", "b")
            s.done("b")
            await h.advance(1.5)
            assert t.events("segment.started", context_id="b") == [], "b waits behind the open a"
            await h.advance(1.0)
            (timeout,) = t.events("error")
            assert timeout["code"] == "context_timeout" and timeout["context_id"] == "a"
            await h.until(lambda: bool(t.events("context.done", context_id="b")))
            assert t.index("context.done", context_id="a") < t.index("segment.started", context_id="b")

    run(scenario())


def test_context_limits_and_finished_ids_are_client_errors() -> None:
    async def scenario() -> None:
        async with SessionHarness(limits=SessionLimits(max_contexts=2)) as h:
            s = h.session
            s.append("One.", "a")
            s.append("Two.", "b")
            with pytest.raises(ClientError) as refused:
                s.append("Three.", "c")
            assert refused.value.event() == {"type": "error", "code": "too_many_contexts",
                                             "message": "at most 2 contexts may be open", "context_id": "c"}  # fmt: skip
            s.interrupt("cancel", "b")
            s.append("Three.", "c")  # a cancelled context no longer counts
            with pytest.raises(ClientError, match="already finished"):
                s.append("Again.", "b")
            with pytest.raises(ClientError, match="no open context"):
                s.flush("nope")
            s.interrupt("cancel", "c")
            assert s.append("Implicit.") == "ctx-1" and s.implicit_context_id == "ctx-1"

    run(scenario())


def test_an_update_applies_to_contexts_opened_after_it() -> None:
    async def scenario() -> None:
        async with SessionHarness(preset=UNPACED) as h:
            s, t = h.session, h.transport
            s.append("Before the update.", "a")
            s.update({"output": {"encoding": "mulaw"}, "metrics": True})
            s.append("After it.", "b")
            s.done("a")
            s.done("b")
            await h.until(lambda: bool(t.events("context.done", context_id="b")))
            (updated,) = t.events("session.updated")
            assert updated["output"]["encoding"] == "mulaw" and updated["output"]["sample_rate"] == 8000
            assert {len(f.audio) for f in t.frames("a")} == {960}, "a keeps the output it opened with"
            assert {len(f.audio) for f in t.frames("b")} == {160}, "20 ms of 8 kHz μ-law"
            metrics = t.events("metrics", context_id="b")
            assert metrics and metrics[0]["engine"] == "scripted" and metrics[0]["underruns"] == 0
            with pytest.raises(ValueError, match="engine"):
                s.update({"engine": "nope"})

    run(scenario())


def test_the_session_core_imports_no_transport_and_no_gateway() -> None:
    """The layering: transports and the gateway build on the session core, never the reverse."""
    import subprocess
    import sys

    code = (
        "import sys, realtime.session.realtime, realtime.session.deps;"
        "bad = [m for m in sys.modules if m.startswith(('realtime.transport', 'realtime.gateway', 'realtime.app'))];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
