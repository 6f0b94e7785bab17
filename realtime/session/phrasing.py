"""Where a segment may end without breaking a phrase, and whether to wait for a better place.

Every segment is synthesized as its own utterance: where it ends, the listener hears a phrase end
(falling intonation, a pause). At a clause mark that is natural; between two words of one phrase
("I can help with" | "that.") it is not. Text from an LLM arrives several times faster than it is
spoken, so the next clause mark is usually a fraction of a second away: waiting for it costs nothing
as long as the listener still has audio to hear meanwhile. Pure: times are passed in.

- `TextRate`: an EWMA of how fast a context's text arrives (characters per second of wall time);
  gaps longer than `stall_s` are stalls, not samples, so a paused LLM does not drag the rate down.
- `ClauseLengths`: an EWMA of the distance between clause marks in the context's text, to predict
  how far away the next one is.
- `clause_wait`: whether to keep waiting for the next clause mark: always while the words already
  there could still be cut and synthesized in time, and past that while the mark is predicted to
  arrive, and its segment to be synthesized, before the listener's buffer runs dry.
- `word_cut_quality`: when a cut must come between two words, how much it hurts: never after an
  article, preposition, auxiliary, possessive or number that governs the next word; best before a
  conjunction or a relative pronoun (the segmenter grades word boundaries with it).
- `pause_after`: how long the pause after a segment may stretch while the next one is synthesized
  (a sentence end takes a longer pause than a comma; the middle of a phrase none at all).
- `PhrasingPolicy`: one context's text timing, and what it asks of the segmenter at each moment.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ..control.settings import PlannerSettings
from ..ewma import Ewma
from .planner import ChunkPlan, ChunkPlanner

BAD, NEUTRAL, GOOD = 0, 1, 2

GOVERNING = frozenset(
    """a an the this that these those my your his her its our their whose some any no every each
    either neither another such what which
    of to in on at by for from with without into onto upon about above below over under between
    among through during before after around against along across behind beyond near toward towards
    via per than like as
    is am are was were be been being do does did have has had will would shall should can could may
    might must not n't
    i you he she we they it
    and or but nor so if because while when where although though unless until since whether
    very more most less least too quite rather
    mr mrs ms dr st""".split()
)
"""Words that lean on the word after them: a cut right after one leaves a phrase hanging."""

PHRASE_STARTERS = frozenset(
    """and but or nor so yet because since although though while whereas unless until if when
    whenever where wherever which who whom whose that then however therefore""".split()
)
"""Words that open a clause or a subordinate phrase: a cut right before one is the least harmful."""

NUMBER_WORDS = frozenset(
    """zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen
    sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred
    thousand million billion half""".split()
)


def _word(token: str) -> str:
    return token.strip("\"'“”‘’«»()[]{}").lower()


def word_cut_quality(before: str, after: str | None) -> int:
    """How natural a cut between the words `before` and `after` sounds (`after` None: not known yet).

    BAD after a word that governs the next one (an article, preposition, auxiliary, possessive, or a
    number before another number or word), GOOD before a conjunction or relative pronoun, NEUTRAL
    otherwise."""
    left = _word(before)
    right = _word(after) if after is not None else None
    if left in GOVERNING or left.endswith("'s"):
        return BAD
    if (left in NUMBER_WORDS or left[:1].isdigit()) and right is not None and right[:1].isalnum():
        return BAD  # "at seven | fifteen", "3 | apples"
    if right is not None and right in PHRASE_STARTERS:
        return GOOD
    return NEUTRAL


class TextRate:
    """Characters per second at which a context's text arrives (EWMA over the gaps between appends)."""

    def __init__(self, *, stall_s: float, alpha: float = 0.3, prior_cps: float = 60.0) -> None:
        self.stall_s = stall_s
        self._rate = Ewma(prior_cps, alpha)
        self._last_at: float | None = None
        self.samples = 0

    def on_text(self, now: float, chars: int) -> None:
        if chars <= 0:
            return
        if self._last_at is not None:
            gap = now - self._last_at
            if 0 < gap < self.stall_s:  # a stall says nothing about the pace once text flows again
                self._rate.update(chars / gap)
                self.samples += 1
        self._last_at = now

    @property
    def cps(self) -> float:
        return self._rate.value

    def stalled(self, now: float) -> bool:
        """No text for `stall_s`: the stream has paused (or ended without `text.done`)."""
        return self._last_at is not None and now - self._last_at >= self.stall_s


class ClauseLengths:
    """The distance in characters between clause marks in a context's text, to predict the next one."""

    def __init__(self, *, prior_chars: float = 45.0, alpha: float = 0.3) -> None:
        self._length = Ewma(prior_chars, alpha)

    def observe(self, chars: int) -> None:
        if chars > 0:
            self._length.update(float(chars))

    @property
    def mean(self) -> float:
        return self._length.value

    def remaining(self, since_mark: int) -> float:
        """Characters still to come before the next clause mark, `since_mark` after the last one."""
        mean = self._length.value
        if since_mark < mean:
            return max(8.0, mean - since_mark)
        return max(8.0, 0.3 * mean)  # already longer than usual: it should end soon


@dataclass(frozen=True)
class ClauseWait:
    wait: bool
    """Keep the words for now: the clause mark is predicted to come, and be synthesized, in time."""
    decide_by: float | None
    """When cutting the words already there stops being safe (re-decide by then); None: no deadline."""


def clause_wait(
    *,
    now: float,
    dry_at: float,
    pending_chars: int,
    since_mark: int,
    rate: TextRate,
    clauses: ClauseLengths,
    wall_s: Callable[[int], float],
    margin_s: float,
) -> ClauseWait:
    """Whether to wait for the next clause mark rather than cut between words now.

    `dry_at`: when the listener runs out of audio; `wall_s(n)`: predicted submit-to-ready time of an
    n-character segment; `margin_s`: slack kept before `dry_at` against errors in those predictions.
    Waiting is safe until `decide_by`, the last moment at which the words already there could still
    be cut and be ready `margin_s` before `dry_at`: until then, wait whatever the stream does (more
    words also mean a better place to cut, should it come to that). Past it, keep waiting only while
    the text flows and the clause mark is predicted (at the context's text rate, `clauses.remaining`
    characters away) to arrive and its segment to be ready within half the margin: a clause about to
    end may spend some of the slack, a long one may not."""
    decide_by = dry_at - margin_s - wall_s(pending_chars)
    if now < decide_by:
        return ClauseWait(True, decide_by)
    if rate.stalled(now):
        return ClauseWait(False, None)
    rest = clauses.remaining(since_mark)
    ready_at = now + rest / max(rate.cps, 1e-6) + wall_s(pending_chars + round(rest))
    wait = ready_at <= dry_at - margin_s / 2
    return ClauseWait(wait, dry_at - margin_s / 2 - wall_s(pending_chars) if wait else None)


_CLOSERS = "\"'”’»)]}」』"
_SENTENCE_END = re.compile(rf"[.!?…。！？][{re.escape(_CLOSERS)}]*\s*\Z")
_CLAUSE_END = re.compile(rf"[,;:—–，、；：][{re.escape(_CLOSERS)}]*\s*\Z")


def ends_mid_phrase(segment: str) -> bool:
    """A segment ending in a letter or digit (closing quotes and brackets looked through): if another
    segment follows, the listener hears a phrase end where there is none."""
    tail = segment.rstrip().rstrip(_CLOSERS)
    return bool(tail) and tail[-1].isalnum()


def pause_after(segment: str, config: PlannerSettings) -> float:
    """Seconds by which the pause after `segment` may stretch while the next one is synthesized.

    Speakers pause at a sentence end, briefly at a comma, and never inside a phrase; a pause a few
    hundred milliseconds longer than the engine's own trailing silence reads as a speaker taking a
    breath, not as a stall. Used both to wait for a clause mark a little longer (`PhrasingPolicy`)
    and to fill that wait with silence rather than let the listener's buffer run dry."""
    if _SENTENCE_END.search(segment):
        return config.sentence_pause_ms / 1000.0
    if _CLAUSE_END.search(segment):
        return config.clause_pause_ms / 1000.0
    return 0.0


IDLE_FINAL_FACTOR = 4.0
"""After this many `idle_flush_ms` without text, even an unconfirmed last word may be spoken."""
_CLAUSE_MARK = re.compile(r"[,;:!?…]|\.(?!\d)")


@dataclass(frozen=True)
class Cut:
    """What to ask the segmenter for now (`Segmenter.next_segment`'s arguments)."""

    min_chars: int
    max_chars: int
    clause_max: int | None
    force: bool
    final: bool


class PhrasingPolicy:
    """One context's text timing, and where its next segment may end.

    Before any audio plays (the first segment), the planner's rules stand: a clause of
    `first_min_chars`..`first_max_chars`, else words after `idle_flush_ms` without text. Once audio
    plays, a segment may run past the planner's `max_chars` to end at a clause mark, up to what can
    still be synthesized before the listener runs dry (`clause_max`), and words are cut only when
    `clause_wait` says waiting would cause an underrun."""

    def __init__(self, config: PlannerSettings, *, now: float) -> None:
        self.config = config
        self.rate = TextRate(stall_s=config.idle_flush_ms / 1000.0, alpha=config.ewma_alpha)
        self.clauses = ClauseLengths(alpha=config.ewma_alpha)
        self.last_text_at = now
        self.decide_by: float | None = None
        """When words waiting for a clause mark must be cut at the latest (wake up then)."""
        self._since_mark = 0
        self.wait = Ewma(0.0, config.ewma_alpha)
        """Seconds a job spends beyond its own synthesis (queueing for a worker, engine overhead)."""

    def on_text(self, now: float, text: str) -> None:
        self.last_text_at = now
        self.rate.on_text(now, len(text))
        start = 0
        for mark in _CLAUSE_MARK.finditer(text):
            self.clauses.observe(self._since_mark + mark.start() - start)
            self._since_mark, start = 0, mark.end()
        self._since_mark += len(text) - start

    def observe_job(self, *, wall_s: float, audio_s: float, engine_speed: float) -> None:
        """A finished job: submitted `wall_s` ago, `audio_s` of audio at the engine's own speed."""
        if audio_s > 0 and engine_speed > 0:
            self.wait.update(max(0.0, wall_s - audio_s / engine_speed))

    def wall_s(self, planner: ChunkPlanner, engine_speed: float) -> Callable[[int], float]:
        """Submit-to-ready time of an n-character segment: the wait every job has (a worker, under
        load) plus its own synthesis. Queueing does not grow with a segment's length: the planner's
        speed EWMA, which spreads it over the audio, makes longer segments look far dearer than they
        are under load, and words were cut that a clause mark a moment later would have spared."""
        speed = max(engine_speed, 1e-6)
        return lambda chars: self.wait.value + planner.predict_audio_s(chars) / speed

    def margin_s(self, wall_s: Callable[[int], float], load: float) -> float:
        """Slack kept before the listener runs dry: `clause_margin` small-chunk times, half that while
        at most half the engine's workers are busy (load <= 0.5: this context's own job on a
        two-worker engine). Predictions go wrong mostly under load (a worker frees up later than
        expected, other sessions' deadlines move); on an idle engine the full margin made a second
        clause that could have waited for its mark ("Sure," | "I can help" | "with that.") be cut
        between words. A margin that shrank in proportion to the load let late frames in under
        heavy load, whenever the load dipped for a moment (docs/BENCHMARKS.md, "Phrasing")."""
        scale = 0.5 if load <= 0.5 else 1.0
        return self.config.clause_margin * scale * wall_s(self.config.first_max_chars)

    def idle_ms(self, now: float) -> float:
        return (now - self.last_text_at) * 1000.0

    def cut(
        self,
        plan: ChunkPlan,
        planner: ChunkPlanner,
        *,
        now: float,
        buffered_s: float,
        pending_chars: int,
        done: bool,
        flushing: bool,
        engine_speed: float,
        low_latency: bool = False,
        pause_s: float = 0.0,
        load: float = 1.0,
    ) -> Cut:
        """`pause_s`: how long the pause at the end of the audio ahead may stretch (`pause_after`
        of the last segment cut): while a worker is free, the next segment may be that much later;
        on a saturated engine it is kept as a cushion against late segments, never planned on.
        `load`: the engine's jobs running or waiting per worker (also scales the margin)."""
        idle_ms = self.idle_ms(now)
        long_idle = idle_ms >= IDLE_FINAL_FACTOR * self.config.idle_flush_ms  # likely ended without done
        if planner.chunks_planned == 0 or buffered_s <= 0 or low_latency:
            self.decide_by = None
            force = plan.force or idle_ms >= self.config.idle_flush_ms
            return Cut(plan.min_chars, plan.max_chars, None, force, done or flushing or long_idle)
        wall_s = self.wall_s(planner, engine_speed)
        margin = self.margin_s(wall_s, load)
        if load >= 1.0:  # predictions fail under load: the stretch then covers their errors instead
            pause_s = 0.0
        budget_s = (
            buffered_s + pause_s - margin - self.wait.value
        )  # synthesis that fits before the listener runs dry
        affordable = planner.audio.chars_for(budget_s * engine_speed)
        clause_max = int(min(self.config.max_chars, max(plan.max_chars, affordable)))
        # The words after the last clause mark received are the tail of what waits to be cut.
        since_mark = min(self._since_mark, pending_chars)
        decision = clause_wait(
            now=now, dry_at=now + buffered_s + pause_s, pending_chars=pending_chars, since_mark=since_mark,
            rate=self.rate, clauses=self.clauses, wall_s=wall_s, margin_s=margin,
        )  # fmt: skip
        self.decide_by = decision.decide_by if decision.wait else None
        force = not decision.wait
        return Cut(
            plan.min_chars, plan.max_chars, clause_max, force, done or flushing or (long_idle and force)
        )

    def next_wake(self, now: float) -> float | None:
        """Seconds until the decision may change without new text (idle thresholds, `decide_by`)."""
        waited = self.idle_ms(now)
        thresholds = (self.config.idle_flush_ms, IDLE_FINAL_FACTOR * self.config.idle_flush_ms)
        upcoming = [(t - waited) / 1000.0 for t in thresholds if t > waited]
        if self.decide_by is not None:
            upcoming.append(max(0.0, self.decide_by - now))
        return min(upcoming) + 0.001 if upcoming else None
