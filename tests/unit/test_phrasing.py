"""Phrasing: word boundaries graded, text rate and clause lengths learnt, and the cut points of whole
token streams (fast, slow, bursty, stalled LLMs) decided by the pure core under a fake clock."""

from __future__ import annotations

import pytest

from realtime.control.settings import PlannerSettings
from realtime.session.phrasing import (
    BAD,
    GOOD,
    NEUTRAL,
    ClauseLengths,
    PhrasingPolicy,
    TextRate,
    clause_wait,
    ends_mid_phrase,
    pause_after,
    word_cut_quality,
)
from realtime.session.planner import ChunkPlanner
from realtime.session.segmenter import Segmenter


@pytest.mark.parametrize(
    "before, after, quality",
    [
        ("the", "station", BAD),
        ("with", "that.", BAD),
        ("can", "help", BAD),
        ("my", "friend", BAD),
        ("John's", "car", BAD),
        ("seven", "fifteen", BAD),
        ("3", "apples", BAD),
        ("station", "and", GOOD),
        ("arrive", "which", GOOD),
        ("station", "leaves", NEUTRAL),
        ("seven.", None, NEUTRAL),
        ("train", None, NEUTRAL),
    ],
)
def test_word_cut_quality(before: str, after: str | None, quality: int) -> None:
    assert word_cut_quality(before, after) == quality


def test_text_rate_learns_the_pace_and_ignores_stalls() -> None:
    rate = TextRate(stall_s=0.25, alpha=0.5, prior_cps=60.0)
    for k in range(20):
        rate.on_text(k * 0.05, 6)  # 6 characters every 50 ms: 120 per second
    assert rate.cps == pytest.approx(120.0, rel=0.01)
    rate.on_text(0.95 + 5.0, 6)  # after a 5 s pause: not a sample
    assert rate.cps == pytest.approx(120.0, rel=0.01)
    assert rate.stalled(6.3) and not rate.stalled(6.0)


def test_clause_lengths_predict_the_rest_of_a_clause() -> None:
    clauses = ClauseLengths(prior_chars=40.0, alpha=1.0)
    clauses.observe(30)
    assert clauses.remaining(10) == 20
    assert clauses.remaining(28) == 8  # never less than a word's worth
    assert clauses.remaining(60) == 9  # longer than usual: expected to end soon


def wall(chars: int) -> float:
    return 0.05 + chars * 0.005


def test_waiting_is_always_safe_until_the_words_must_go() -> None:
    rate, clauses = TextRate(stall_s=0.25), ClauseLengths()
    decision = clause_wait(now=0.0, dry_at=1.0, pending_chars=20, since_mark=20, rate=rate, clauses=clauses,
                           wall_s=wall, margin_s=0.1)  # fmt: skip
    assert decision.wait and decision.decide_by == pytest.approx(1.0 - 0.1 - wall(20))


def test_past_that_a_clause_about_to_end_may_spend_half_the_margin() -> None:
    clauses = ClauseLengths(prior_chars=24.0)
    fast, slow, stalled = (TextRate(stall_s=0.25, prior_cps=cps) for cps in (400.0, 20.0, 400.0))
    for rate in (fast, slow):
        rate.on_text(0.62, 4)
    stalled.on_text(0.1, 4)
    # The words could be cut in time until 1.0 - 0.2 - wall(20) = 0.65; now is 0.66.
    kwargs = {"now": 0.66, "dry_at": 1.0, "pending_chars": 20, "since_mark": 20, "clauses": clauses,
              "wall_s": wall, "margin_s": 0.2}  # fmt: skip
    # 8 more characters in 20 ms, ready at 0.66 + 0.02 + wall(28) = 0.87, within 1.0 - 0.1.
    assert clause_wait(rate=fast, **kwargs).wait
    assert not clause_wait(rate=slow, **kwargs).wait  # 0.4 s away: cut the words now
    assert not clause_wait(rate=stalled, **kwargs).wait  # nothing is arriving


def tokens(text: str, cps: float, start: float = 0.0, size: int = 4) -> list[tuple[float, str]]:
    return [(start + k * size / cps, text[i : i + size]) for k, i in enumerate(range(0, len(text), size))]


def simulate(
    stream: list[tuple[float, str]], *, speed: float, margin: float = 1.0, **settings: float
) -> tuple[list[str], int]:
    """The context's decisions under a fake clock: one worker at `speed`× real time (beside another
    that serves other sessions: a job is half the engine's load), each segment's
    audio (0.3 s + 50 ms per character, Piper's) arriving whole when its job ends, playback starting
    with the first. A segment ready after playback ran dry stretches the pause before it (silence) up
    to `pause_after` of the segment before; later than that it is an underrun. Returns the segments
    and the underruns."""
    cfg, tick = PlannerSettings(clause_margin=margin, **settings), 0.005
    planner = ChunkPlanner(cfg, nominal_speed=speed, audio_per_char_s=0.05, audio_per_segment_s=0.3)
    policy, segmenter = PhrasingPolicy(cfg, now=0.0), Segmenter()
    jobs: list[tuple[float, float, int, float, float]] = []  # ready at, audio, chars, submitted at, pause
    segments: list[str] = []
    now, i, free_at, dry_at, underruns = 0.0, 0, 0.0, None, 0
    while now < 60:
        while i < len(stream) and stream[i][0] <= now + 1e-9:
            segmenter.push(stream[i][1])
            policy.on_text(now, stream[i][1])
            i += 1
        while jobs and jobs[0][0] <= now + 1e-9:
            ready, audio, chars, submitted, pause = jobs.pop(0)
            underruns += dry_at is not None and ready > dry_at + pause + 1e-6
            dry_at = max(dry_at or ready, ready) + audio
            planner.observe(chars=chars, audio_s=audio, wall_s=ready - submitted)
            policy.observe_job(wall_s=ready - submitted, audio_s=audio, engine_speed=speed)
        buffered = (max(0.0, dry_at - now) if dry_at else 0.0) + sum(job[1] for job in jobs)
        while len(jobs) < cfg.max_inflight:
            pause = pause_after(segments[-1], cfg) if segments else 0.0
            plan = planner.plan(buffered)
            cut = policy.cut(plan, planner, now=now, buffered_s=buffered, pending_chars=segmenter.pending_chars,
                             done=i == len(stream), flushing=False, engine_speed=speed, pause_s=pause,
                             load=len(jobs) / 2)  # fmt: skip
            text = segmenter.next_segment(cut.min_chars, cut.max_chars, final=cut.final, force=cut.force,
                                          clause_max=cut.clause_max)  # fmt: skip
            if text is None:
                break
            planner.committed(plan, len(text))
            audio = 0.3 + 0.05 * len(text)
            free_at = max(now, free_at) + audio / speed
            jobs.append((free_at, audio, len(text), now, pause))
            segments.append(text)
            buffered += audio
        if i == len(stream) and not segmenter.pending.strip() and not jobs:
            break
        now += tick
    return segments, underruns


ANSWER = (
    "Sure, I can help with that. The next train to the central station leaves at seven fifteen in the "
    "morning, and it stops at every station along the way. Plan for about forty minutes of travel time."
)
CLAUSES = [
    "Sure,",
    "I can help with that.",
    "The next train to the central station leaves at seven fifteen in the morning,",
    "and it stops at every station along the way.",
    "Plan for about forty minutes of travel time.",
]


@pytest.mark.parametrize(
    "name, stream, speed, expected",
    [
        ("fast LLM, fast engine", tokens(ANSWER, 120), 10.0, CLAUSES),
        ("bursty LLM", tokens(ANSWER, 100, size=40), 10.0, [" ".join(CLAUSES[:2]), *CLAUSES[2:]]),
        ("fast LLM, engine 3x", tokens(ANSWER, 120), 3.0,
         ["Sure,", "I can help", "with that.", *CLAUSES[2:]]),
        ("LLM stalls 3 s mid-sentence", tokens(ANSWER[:70], 120) + tokens(ANSWER[70:], 120, start=3.0), 10.0,
         [*CLAUSES[:2], "The next train to the central", CLAUSES[2][30:], *CLAUSES[3:]]),
    ],
)  # fmt: skip
def test_cut_points_of_token_streams(
    name: str, stream: list[tuple[float, str]], speed: float, expected: list[str]
) -> None:
    segments, underruns = simulate(stream, speed=speed)
    assert segments == expected, name
    assert underruns == 0


def test_the_default_margin_with_stretchable_pauses_ends_every_clause_at_its_mark() -> None:
    """Behind "Sure," the second clause waits for its mark: on an idle engine the margin is half the
    setting, and the pause after a comma may stretch a little. Without stretching (pauses 0) and at
    the full margin, it must be cut between words."""
    default = PlannerSettings().clause_margin
    segments, underruns = simulate(tokens(ANSWER, 120), speed=10.0, margin=default)
    assert segments == CLAUSES and underruns == 0
    rigid, _ = simulate(
        tokens(ANSWER, 120), speed=10.0, margin=2 * default, sentence_pause_ms=0, clause_pause_ms=0
    )
    assert rigid[:3] == ["Sure,", "I can help", "with that."]


def test_an_llm_slower_than_speech_never_leaves_a_governing_word_hanging() -> None:
    """At 15 characters a second text arrives slower than it is spoken: words must be cut, but never
    right after an article, a preposition, an auxiliary or a number that governs the next word."""
    segments, _ = simulate(tokens(ANSWER, 15), speed=10.0)
    assert " ".join(segments) == ANSWER and len(segments) > len(CLAUSES)
    for segment in segments[:-1]:
        last = segment.split()[-1]
        assert segment[-1] in ",." or word_cut_quality(last, None) != BAD or last == "the", segment


@pytest.mark.parametrize(
    "segment, pause_ms",
    [("Great question!", 400), ('He said "no."', 400), ("Well…", 400), ("Sure,", 100), ("first; ", 100),
     ("I can help", 0), ("(an aside)", 0), ("at 3", 0)],
)  # fmt: skip
def test_a_pause_stretches_most_after_a_sentence_little_after_a_clause_and_never_mid_phrase(
    segment: str, pause_ms: int
) -> None:
    assert (
        pause_after(segment, PlannerSettings(sentence_pause_ms=400, clause_pause_ms=100)) == pause_ms / 1000
    )


@pytest.mark.parametrize(
    "segment, mid",
    [("I can help", True), ("at 7", True), ('"quoted"', True), ("Sure,", False), ("End.)", False)],
)
def test_ends_mid_phrase(segment: str, mid: bool) -> None:
    assert ends_mid_phrase(segment) is mid


def test_a_stretchable_pause_is_planned_on_only_while_a_worker_is_free() -> None:
    """With a worker free, the pause after the audio ahead lets the words wait longer for their clause
    mark; on a saturated engine it changes nothing (it only covers a late segment with silence)."""
    cfg = PlannerSettings()
    planner = ChunkPlanner(cfg, nominal_speed=10.0, audio_per_char_s=0.05, audio_per_segment_s=0.3)
    planner.committed(planner.plan(0.0), 5)  # "Sure," is playing

    def forced(buffered_s: float, pause_s: float, load: float) -> bool:
        policy = PhrasingPolicy(cfg, now=0.0)
        policy.on_text(0.0, "Sure, I can help")
        cut = policy.cut(planner.plan(buffered_s), planner, now=0.1, buffered_s=buffered_s, pending_chars=10,
                         done=False, flushing=False, engine_speed=10.0, pause_s=pause_s, load=load)  # fmt: skip
        return cut.force

    grid = [b / 100 for b in range(1, 200)]
    assert any(forced(b, 0.0, 0.99) and not forced(b, 0.4, 0.99) for b in grid)
    assert all(forced(b, 0.0, 1.0) == forced(b, 0.4, 1.0) for b in grid)
