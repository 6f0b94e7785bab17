"""Planner, playout clock and deadline queue: pure logic stepped by hand."""

from __future__ import annotations

import pytest

from realtime.control.settings import PlannerSettings
from realtime.engines.base import EngineStats
from realtime.engines.deadline_queue import DeadlineQueue
from realtime.ewma import Ewma
from realtime.session.clock import FakeClock
from realtime.session.planner import ChunkPlanner, SegmentAudioModel
from realtime.session.playout import BurstPacer, PlayoutClock


def planner(**kwargs) -> ChunkPlanner:  # type: ignore[no-untyped-def]
    return ChunkPlanner(PlannerSettings(**kwargs), nominal_speed=10.0, audio_per_char_s=0.06)


def test_ewma_seeds_then_smooths() -> None:
    e = Ewma(10.0, alpha=0.5)
    assert e.value == 10.0
    assert e.update(4.0) == 4.0  # the first measurement replaces the prior
    assert e.update(8.0) == pytest.approx(6.0)


def test_segment_audio_model_separates_the_per_segment_part() -> None:
    """Piper-like audio: 0.3 s per segment + 0.05 s per character. A ratio learnt on short first
    segments (0.5 s for 4 characters: 0.125 s/char) would predict 12.5 s for 100 characters."""
    model = SegmentAudioModel(0.0, 0.08, alpha=0.3)  # a poor prior: no per-segment part
    for chars in (4, 5, 12, 30, 8, 60, 20, 45):
        model.update(chars, 0.3 + 0.05 * chars)
    assert 0.2 < model.base_s < 0.4
    assert model.per_char_s == pytest.approx(0.05, abs=0.005)
    assert model.predict(100) == pytest.approx(5.3, rel=0.05)
    assert model.chars_for(model.predict(70)) == pytest.approx(70)
    assert model.predict(0) == 0.0


def test_segment_audio_model_stays_sane_on_same_length_samples() -> None:
    """Samples that all have one length cannot pin a line down: the prior keeps the slope."""
    model = SegmentAudioModel(0.3, 0.05, alpha=0.3)
    for _ in range(20):
        model.update(10, 0.9)  # 0.1 s more than the prior says
    assert model.predict(10) == pytest.approx(0.9, abs=0.05)
    assert 0.02 < model.per_char_s < 0.1 and model.base_s >= 0.0


def test_segment_audio_model_never_goes_negative() -> None:
    model = SegmentAudioModel(0.0, 0.06, alpha=0.5)
    for chars, audio in ((10, 0.2), (100, 6.0), (50, 2.8)):  # the line crosses zero above 0 chars
        model.update(chars, audio)
    assert model.base_s >= 0.0 and model.per_char_s > 0.0


def test_engine_recent_speed_follows_completed_jobs_only() -> None:
    stats = EngineStats()
    assert stats.recent_speed is None  # nothing measured: callers fall back to the nominal speed
    stats.record(outcome="completed", chars=10, audio_s=1.0, busy_s=0.1)
    assert stats.recent_speed == pytest.approx(10.0)
    stats.record(outcome="cancelled", chars=10, audio_s=0.1, busy_s=1.0)  # cut short: says nothing
    stats.record(outcome="failed", chars=10, audio_s=0.0, busy_s=1.0)
    assert stats.recent_speed == pytest.approx(10.0)
    stats.record(outcome="completed", chars=10, audio_s=2.0, busy_s=1.0)
    assert stats.recent_speed == pytest.approx(10.0 + 0.1 * (2.0 - 10.0))


def test_first_chunk_is_small_and_nothing_buffered_means_small() -> None:
    p = planner(first_min_chars=8, first_max_chars=60)
    plan = p.plan(buffered_s=0.0)
    assert (plan.min_chars, plan.max_chars, plan.force) == (8, 60, False)
    p.committed(plan, 40)
    assert p.plan(buffered_s=0.0).max_chars == 60  # ran dry: back to small chunks
    assert p.plan(buffered_s=0.0).force  # ...cut at any word boundary


def test_chunks_grow_gradually_while_the_buffer_is_healthy() -> None:
    p = planner(first_max_chars=60, max_chars=300, growth=2.0, safety=0.5)
    plan = p.plan(0.0)
    p.committed(plan, 60)
    sizes = []
    for _ in range(4):
        plan = p.plan(buffered_s=30.0)  # plenty buffered: growth is the only limit
        sizes.append(plan.max_chars)
        p.committed(plan, plan.max_chars)
    assert sizes == [120, 240, 300, 300]


def test_chunk_must_finish_before_the_buffer_runs_dry() -> None:
    p = planner(first_max_chars=20, max_chars=1000, growth=100.0, safety=0.5)
    p.committed(p.plan(0.0), 20)
    p.observe(chars=100, audio_s=6.0, wall_s=2.0)  # measured: 3x real time, 0.06 s/char
    plan = p.plan(buffered_s=2.0)
    # 0.5 * 2 s buffered * 3x / 0.06 s per char = 50 characters, ready in 1 s < 2 s buffered.
    assert plan.max_chars == 50
    assert p.predict_wall_s(plan.max_chars) < 2.0


def test_slow_engine_under_load_shrinks_chunks() -> None:
    p = planner(first_max_chars=20, max_chars=1000, growth=100.0)
    p.committed(p.plan(0.0), 20)
    before = p.plan(buffered_s=4.0).max_chars
    for _ in range(5):
        p.observe(chars=50, audio_s=3.0, wall_s=3.0)  # queueing made it only real time
    after = p.plan(buffered_s=4.0).max_chars
    assert after < before


def test_low_latency_caps_chunks() -> None:
    p = planner(first_max_chars=40, max_chars=300)
    p.committed(p.plan(0.0), 40)
    assert p.plan(100.0, low_latency=True).max_chars == 40


def test_playout_lead_and_underruns_with_a_fake_clock() -> None:
    clock = FakeClock()
    play = PlayoutClock()
    play.on_send(clock.now(), 1.0)  # 1 s of audio at t=0: playback starts
    clock.advance(0.4)
    assert play.played_s(clock.now()) == pytest.approx(0.4)
    assert play.lead_s(clock.now()) == pytest.approx(0.6)
    play.on_send(clock.now(), 1.0)  # in time: no underrun
    assert play.underruns == 0
    clock.advance(2.5)  # playback reached 2.0 s at t=2.0; the next audio comes at t=2.9
    assert play.lead_s(clock.now()) == 0.0
    play.on_send(clock.now(), 0.5)
    assert play.underruns == 1 and play.underrun_s == pytest.approx(0.9)
    # Playback resumed at the new audio: at t=3.0, 0.1 s of it has been heard.
    clock.advance(0.1)
    assert play.played_s(clock.now()) == pytest.approx(2.1)
    assert play.ends_at() == pytest.approx(3.4)
    clock.advance(1.0)  # the listener ran dry at 3.4 s: that moment stays put
    assert play.ends_at() == pytest.approx(3.4) and play.lead_s(clock.now()) == 0.0
    assert PlayoutClock().ends_at() is None


def test_truncated_playout_lets_the_next_audio_go_at_once() -> None:
    clock, play, pacer = FakeClock(), PlayoutClock(), BurstPacer(0.3, 0.02)
    play.on_send(clock.now(), 0.3)  # a full lead
    clock.advance(0.01)
    assert pacer.wait_s(play.lead_s(clock.now())) > 0
    play.truncate(clock.now())  # barge-in: the listener dropped the 0.29 s it had not played
    assert play.lead_s(clock.now()) == 0.0 and play.ends_at() == pytest.approx(0.01)
    assert pacer.wait_s(play.lead_s(clock.now())) == 0.0
    play.on_send(clock.now(), 0.02)
    assert play.underruns == 0, "audio right after the cut is not late"
    PlayoutClock().truncate(1.0)  # nothing sent yet: nothing to drop


def test_deadline_queue_orders_by_deadline_then_arrival() -> None:
    q: DeadlineQueue[str] = DeadlineQueue()
    q.push("late", lambda: 5.0)
    first = q.push("tie-1", lambda: 1.0)
    q.push("tie-2", lambda: 1.0)
    q.push("early", lambda: 0.5)
    assert len(q) == 4
    q.remove(first)
    q.remove(first)  # idempotent
    assert len(q) == 3
    assert [q.pop(), q.pop(), q.pop()] == ["early", "tie-2", "late"]
    with pytest.raises(IndexError):
        q.pop()


def test_deadline_queue_reads_deadlines_when_popping() -> None:
    """A waiting job whose session runs dry sooner than predicted overtakes the others."""
    deadlines = {"a": 1.0, "b": 2.0, "c": 3.0}
    q: DeadlineQueue[str] = DeadlineQueue()
    for name in deadlines:
        q.push(name, lambda name=name: deadlines[name])
    deadlines["c"] = 0.5
    assert q.pop() == "c"
    deadlines["a"] = 9.0
    assert [q.pop(), q.pop()] == ["b", "a"]


def test_first_chunk_shrinks_when_the_engine_is_saturated() -> None:
    p = planner(first_max_chars=30, loaded_first_max_chars=12)
    assert p.plan(0.0, load=0.0).max_chars == 30
    assert p.plan(0.0, load=1.0).max_chars == 15  # every worker busy: half size
    assert p.plan(0.0, load=10.0).max_chars == 12
    assert p.plan(0.0, load=10.0).min_chars <= 12


def test_first_chunk_minimum_grows_with_load() -> None:
    p = planner(first_min_chars=3, first_max_chars=30, loaded_first_max_chars=12)
    assert p.plan(0.0, load=0.0).min_chars == 3  # "Sure," may go alone on an idle engine
    assert p.plan(0.0, load=0.5).min_chars == 7
    assert p.plan(0.0, load=2.0).min_chars == 12  # under load the first chunk must cover the wait


def _paced_stream(
    lead_s: float | None, frame_s: float, seconds: float
) -> tuple[list[int], float, PlayoutClock]:
    """Frames sent through a `BurstPacer` to a listener for `seconds` of fake time: the frames sent at
    each wakeup, the largest lead seen, and the listener's clock."""
    clock, play, pacer = FakeClock(), PlayoutClock(), BurstPacer(lead_s, frame_s)
    bursts: list[int] = []
    most_ahead = 0.0
    while clock.now() < seconds:
        sent = 0
        while (wait := pacer.wait_s(play.lead_s(clock.now()))) == 0:
            play.on_send(clock.now(), frame_s)
            sent += 1
            most_ahead = max(most_ahead, play.lead_s(clock.now()))
        bursts.append(sent)
        clock.advance(wait)
    return bursts, most_ahead, play


def test_pacer_tops_up_the_lead_in_bursts_of_a_fifth() -> None:
    bursts, most_ahead, play = _paced_stream(0.3, 0.02, 10.0)
    assert bursts[0] == 15  # 300 ms at once when the stream starts
    assert set(bursts[1:]) == {3}  # then 60 ms per wakeup, not one wakeup per 20 ms frame
    assert most_ahead <= 0.3 + 1e-9
    assert play.underruns == 0 and play.sent_s >= 10.0


def test_pacer_with_a_short_lead_paces_frame_by_frame() -> None:
    """Twilio's 100 ms lead: a burst is one frame, so frames leave every 20 ms (real-time pacing)."""
    bursts, most_ahead, play = _paced_stream(0.1, 0.02, 5.0)
    assert bursts[0] == 5 and set(bursts[1:]) == {1}
    assert most_ahead <= 0.1 + 1e-9 and play.underruns == 0


def test_pacer_with_a_lead_under_one_frame_sends_each_frame_as_the_last_ends() -> None:
    bursts, most_ahead, play = _paced_stream(0.005, 0.02, 1.0)
    assert set(bursts) == {1} and most_ahead == pytest.approx(0.02) and play.underruns == 0


def test_unpaced_stream_never_waits() -> None:
    pacer = BurstPacer(None, 0.02)
    assert pacer.wait_s(0.0) == pacer.wait_s(100.0) == 0.0
