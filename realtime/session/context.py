"""One utterance: incremental text in, ordered stitched audio events out.

A `SpeechContext` glues the pure parts together on the event loop:
the segmenter cuts text where the planner says, each segment becomes an
engine job whose deadline is its latest start (the moment the audio ahead of it
runs out, less its synthesis time; kept up to date while it waits), up to
`max_inflight` jobs synthesize at once, and their audio is emitted strictly in
order through the stitcher. Backpressure: when more than `max_ahead_s` of
audio waits for the consumer, no new job starts, so a slow reader bounds
memory and pauses synthesis. `cancel()` stops engine work through the jobs'
cancel tokens and ends the event stream after a fade of at most 10 ms.

With an `EngineSource`, a context whose engine fails, stalls or stops taking work
moves to a fallback engine (`failover.py` has the rules): the affected segments are
synthesized again there, resampled to the context's rate, and the context reports
`degraded`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace

import numpy as np

from ..audio.resample import StreamResampler
from ..control.settings import PlannerSettings
from ..engines.base import Engine, SynthesisJob, WordTiming, WordTimings
from . import failover
from .clock import Clock, MonotonicClock
from .events import (
    AudioOut,
    ContextDone,
    ContextError,
    ContextEvent,
    SegmentDone,
    SegmentStarted,
    SpokenWord,
    WordsOut,
)
from .failover import EngineSource, stall_deadline
from .front_end import FrontEnd, Piece
from .phrasing import PhrasingPolicy, ends_mid_phrase, pause_after
from .planner import ChunkPlanner
from .playout import PlayoutClock
from .segmenter import Segmenter
from .stitcher import Stitcher

log = logging.getLogger(__name__)

_END = object()
_RESTART = object()
"""First item of a segment synthesized again on a fallback after some of it was emitted: fade out what
the stitcher holds of the old audio, then start the segment afresh."""
PAUSE_STEP_S = 0.02
"""A stretched pause goes out in steps of this much silence, each once the listener is about to run dry."""


@dataclass
class _Job:
    segment_id: int
    job: SynthesisJob
    piece: Piece
    """The segment's text as written, what the engine reads (`piece.spoken`, with the map between
    them for alignment), the silence before it and its rate (SSML)."""
    submitted_at: float
    engine: Engine
    engine_name: str
    degraded: bool = False
    """Synthesized on a fallback engine."""
    attempt: int = 0
    """Bumped each time the job (re)starts on an engine: an older attempt's task only cleans up."""
    attempt_at: float = 0.0
    progress_at: float = 0.0
    """When the current attempt started or last brought audio (stall detection)."""
    emitted: int = 0
    """Samples of it the consumer has passed on (a restart after some must fade them out)."""
    pause_s: float = 0.0
    """Silence that may go before this segment's audio while the listener waits for it (a stretched
    pause after the segment before it: `pause_after`)."""
    stretched: bool = False
    silence: int = 0
    """Samples of SSML break silence at the start of its audio (not engine audio: the planner's audio
    model leaves them out)."""
    queue: asyncio.Queue[object] = field(default_factory=asyncio.Queue)
    origin: int | None = None
    """Where the job's first sample lies in the context's audio, once it is known (its first audio)."""
    words: list[WordTiming] = field(default_factory=list)
    """Timed words the engine sent that wait for the job's `origin`."""
    samples: int = 0
    queued_samples: int = 0
    task: asyncio.Task[None] | None = None
    finished: bool = False


@dataclass
class ContextStats:
    created_at: float
    first_job_at: float | None = None
    """When the first segment was cut: the clause boundary (or flush) that started speech."""
    first_audio_at: float | None = None
    segments: int = 0
    audio_samples: int = 0
    synth_wall_s: float = 0.0
    last_chunk_chars: int = 0
    mid_phrase_cuts: int = 0
    """Segments that ended mid-phrase with another one after them (`ends_mid_phrase`)."""
    pauses_stretched: int = 0
    pause_stretch_s: float = 0.0
    """Silence sent in stretched pauses while the next segment was synthesized."""
    failovers: int = 0
    """Moves to a fallback engine."""

    def ttfa_s(self) -> float | None:
        return None if self.first_audio_at is None else self.first_audio_at - self.created_at


class SpeechContext:
    def __init__(
        self,
        engine: Engine,
        *,
        voice: str,
        speed: float = 1.0,
        planner: PlannerSettings,
        session_id: str = "",
        context_id: str = "",
        max_ahead_s: float = 20.0,
        max_text_chars: int = 100_000,
        low_latency: bool = False,
        stretch_pauses: bool = True,
        crossfade_ms: float = 5.0,
        clock: Clock | None = None,
        engine_name: str | None = None,
        source: EngineSource | None = None,
        release: Callable[[], None] | None = None,
        degraded: bool = False,
        stall_s: float = 1.5,
        text_mode: str = "auto",
        ssml: bool = False,
    ) -> None:
        self.engine = engine
        self.engine_name = engine_name or engine.info.name
        """The engine new segments go to, by its registry name (it changes on failover)."""
        self.voice = voice
        self.degraded = degraded
        """Speaking on a fallback engine (from the start, or since a failover)."""
        self._source = source
        self._releases: list[Callable[[], None]] = [release] if release is not None else []
        """Lets go of the engines this context has used (an unloading engine waits for them)."""
        self._tried: set[str] = set()
        self.stall_s = stall_s
        self.speed = speed
        self.session_id = session_id
        self.context_id = context_id
        self.low_latency = low_latency
        self.stretch_pauses = stretch_pauses and not low_latency
        """Pauses at clause and sentence ends may stretch with silence (`pause_after`) while the next
        segment synthesizes: for listeners in real time, not for audio saved whole (REST, the CLI)."""
        self.sample_rate = engine.info.sample_rate
        self.clock = clock or MonotonicClock()
        self.config = planner
        self.max_ahead_s = max_ahead_s
        self.planner = ChunkPlanner(
            planner,
            nominal_speed=engine.info.hints.nominal_speed,
            audio_per_char_s=engine.info.hints.audio_per_char_s,
            audio_per_segment_s=engine.info.hints.audio_per_segment_s,
        )
        self.segmenter = Segmenter(max_buffer_chars=max_text_chars)
        self.front_end = FrontEnd(text_mode, ssml=ssml)
        """Text as written → what the engine reads, per segment (`text.normalize`, SSML)."""
        self.stitcher = Stitcher(self.sample_rate, crossfade_ms)
        self.playout = PlayoutClock()
        self.stats = ContextStats(created_at=self.clock.now())
        self._jobs: deque[_Job] = deque()
        self._next_segment_id = 0
        self._words_end_ms = 0.0
        """Where the last timed word ended in the context's audio (`_words_out`)."""
        self._pause_after_last_s = 0.0
        """How long the pause after the last segment cut may stretch: the next one goes after it."""
        self._last_cut_mid_phrase = False
        self._done = False
        self._flushing = False
        self._cancelled = False
        self._first_job_done = False
        self._first_due: float | None = None
        """The first chunk is due this soon after it is cut (`first_deadline_ms`): nothing plays yet."""
        self._held_until: float | None = None
        """The consumer holds the emitted audio back (a startup hold) and starts playback by then."""
        self._held_s = 0.0
        self.phrasing = PhrasingPolicy(planner, now=self.clock.now())
        self._wake_producer = asyncio.Event()
        self._wake_consumer = asyncio.Event()

    # -- text input -------------------------------------------------------------------------

    def append(self, text: str) -> None:
        """Add incremental text; ValueError if the context is finished or over its limit."""
        if self._done or self._cancelled:
            raise ValueError("context is already finished")
        self.segmenter.push(self.front_end.feed(text))
        self.phrasing.on_text(self.clock.now(), text)
        self._wake_producer.set()

    def flush(self) -> None:
        """Synthesize everything buffered now, without waiting for a better boundary."""
        self._flushing = True
        self._wake_producer.set()

    def done(self) -> None:
        """No more text: finish speaking what is buffered, then end the event stream."""
        if not self._done and not self._cancelled:
            with contextlib.suppress(ValueError):  # a held SSML tail over the buffer limit: dropped
                self.segmenter.push(self.front_end.close())
        self._done = True
        self._wake_producer.set()
        self._wake_consumer.set()  # everything may already be spoken: the consumer must notice

    def cancel(self) -> None:
        """Stop now: engine work is cancelled and no further audio is emitted."""
        if self._cancelled:
            return
        self._cancelled = True
        self.segmenter.reset()
        for job in self._jobs:
            job.job.cancel.cancel()
            if job.task is not None and not job.task.done():
                job.task.cancel()
        self._release_engines()
        self._wake_producer.set()
        self._wake_consumer.set()

    def _release_engines(self) -> None:
        releases, self._releases = self._releases, []
        for release in releases:
            release()

    def hold_playback(self, until: float) -> None:
        """The consumer holds what was emitted and starts playing it at `until` at the latest.

        Until `release_playback`, emitted audio does not start the playout clock: deadlines count
        from `until` instead, so a held context's jobs do not look more urgent than they are and take
        workers from contexts that are playing."""
        if self._held_until is not None:
            return
        self._held_until = until
        self._held_s = self.playout.sent_s  # what was emitted so far has not played yet
        self.playout = PlayoutClock()
        self._wake_producer.set()

    def release_playback(self) -> None:
        """The held audio starts playing now."""
        if self._held_until is None:
            return
        self._held_until = None
        if self._held_s > 0:
            self.playout.on_send(self.clock.now(), self._held_s)
        self._held_s = 0.0
        self._wake_producer.set()

    def quiet_since(self) -> float | None:
        """When text last arrived, if everything that arrived has been synthesized; None while text
        waits to be cut or a job is still running."""
        if self.segmenter.pending.strip() or any(not j.finished for j in self._jobs):
            return None
        return self.phrasing.last_text_at

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    @property
    def finished(self) -> bool:
        return self._cancelled or (self._done and not self.segmenter.pending.strip() and not self._jobs)

    # -- accounting ---------------------------------------------------------------------------

    def queued_audio_s(self) -> float:
        """Synthesized audio waiting for the consumer."""
        return sum(j.queued_samples for j in self._jobs) / self.sample_rate

    def _audio_to_come_s(self, job: _Job) -> float:
        """Audio of `job` the listener has still to get: what waits for the consumer, plus the
        predicted rest while it synthesizes."""
        queued = job.queued_samples / self.sample_rate
        if job.finished:
            return queued
        predicted = self.planner.predict_audio_s(len(job.job.text)) + job.silence / self.sample_rate
        return queued + max(0.0, predicted - job.samples / self.sample_rate)

    def _playback_ends_at(self) -> float:
        """When the listener runs out of what was sent; before any audio, when the first chunk is due;
        while the consumer holds the audio, when what it holds would end if released at the latest."""
        if self._held_until is not None:
            return self._held_until + self._held_s
        ends = self.playout.ends_at()
        if ends is not None:
            return ends
        return self._first_due if self._first_due is not None else self.clock.now()

    def _engine_speed(self) -> float:
        """The engine's own synthesis speed (audio per second of a running job), queueing excluded."""
        return self.engine.stats.recent_speed or self.engine.info.hints.nominal_speed

    def _refresh_deadlines(self) -> None:
        """Set every job's deadline to its latest start: when the audio ahead of it runs out, less
        its synthesis time (EDF on the run-out time alone starts a long job just as it is due).

        Deadlines move while jobs wait for a worker: when a job ahead yields less or more audio than
        predicted, or the engine's measured speed changes, and the engine's wait list (earliest
        deadline first, read when a worker frees up) sees it. No job is due after a later one of the
        same context: a long job behind a short one must not go first.
        """
        speed = self._engine_speed()
        at = self._playback_ends_at()
        waiting: list[_Job] = []
        for job in self._jobs:
            if not job.finished:
                audio = self.planner.predict_audio_s(len(job.job.text))
                job.job.deadline = at - self.planner.predict_run_s(audio, speed)
                waiting.append(job)
            at += self._audio_to_come_s(job)
        for earlier, later in zip(reversed(waiting[:-1]), reversed(waiting[1:]), strict=True):
            earlier.job.deadline = min(earlier.job.deadline, later.job.deadline)

    def buffered_s(self) -> float:
        """Audio ahead of the listener: sent but unplayed, queued, and predicted from running jobs."""
        ahead = self.playout.lead_s(self.clock.now()) + self._held_s
        return ahead + sum(self._audio_to_come_s(j) for j in self._jobs)

    # -- producer -----------------------------------------------------------------------------

    def others_load(self) -> float:
        """The engine's load without this context's own unfinished jobs on it: whether its next job
        waits behind other sessions' work (its own lookahead filling the workers does not count)."""
        mine = sum(1 for j in self._jobs if not j.finished and j.engine is self.engine)
        return max(0.0, self.engine.load - mine / max(1, self.engine.capacity))

    def _inflight(self) -> int:
        return sum(1 for j in self._jobs if not j.finished)

    def _inflight_limit(self) -> int:
        # On an idle engine the first chunk goes alone: a second, larger job started beside it would
        # hold a worker that another session's first chunk may need (jobs are not preemptible). When
        # every worker is busy the second job only queues, in deadline order, so it may go at once.
        if self._first_job_done or self.engine.load >= 1.0:
            return self.config.max_inflight
        return 1

    def _try_start_jobs(self) -> None:
        self._refresh_deadlines()
        while not self._cancelled and self._inflight() < self._inflight_limit():
            if self.queued_audio_s() > self.max_ahead_s:
                return  # slow reader: pause synthesis until it catches up
            now = self.clock.now()
            buffered = self.buffered_s()
            plan = self.planner.plan(buffered, low_latency=self.low_latency, load=self.engine.load)
            cut = self.phrasing.cut(
                plan, self.planner, now=now, buffered_s=buffered, pending_chars=self.segmenter.pending_chars,
                done=self._done, flushing=self._flushing, engine_speed=self._engine_speed(),
                low_latency=self.low_latency, pause_s=self._pause_after_last_s, load=self.engine.load,
            )  # fmt: skip
            text = self.segmenter.next_segment(
                cut.min_chars, cut.max_chars, final=cut.final, force=cut.force, clause_max=cut.clause_max
            )
            if text is None:
                if not self.segmenter.pending.strip():
                    self._flushing = False
                return
            self._check_engine()
            pieces = self.front_end.pieces(text, self.engine.info.capabilities.text_front_end)
            if not pieces:
                continue  # punctuation, spaces, emoji alone: an engine would say nothing, or "exclamation"
            if self._first_due is None:
                self._first_due = now + self.config.first_deadline_ms / 1000.0
            self.planner.committed(plan, len(text))
            for piece in pieces:  # one unless SSML breaks or rates cut the segment
                self._start_job(piece)
            self._refresh_deadlines()

    def _start_job(self, piece: Piece) -> None:
        text = piece.original
        job = _Job(
            segment_id=self._next_segment_id,
            job=self._synthesis_job(piece.spoken.text, speed=self._speed(piece.rate)),
            piece=piece,
            silence=round(piece.pause_s * self.sample_rate),
            submitted_at=self.clock.now(),
            engine=self.engine,
            engine_name=self.engine_name,
            degraded=self.degraded,
            pause_s=self._pause_after_last_s,
        )
        self._next_segment_id += 1
        self.stats.mid_phrase_cuts += self._last_cut_mid_phrase
        self._last_cut_mid_phrase = ends_mid_phrase(text)
        self._pause_after_last_s = pause_after(text, self.config) if self.stretch_pauses else 0.0
        self.stats.last_chunk_chars = len(text)
        if self.stats.first_job_at is None:
            self.stats.first_job_at = job.submitted_at
        self._launch(job)
        self._jobs.append(job)
        self._wake_consumer.set()

    def _synthesis_job(self, text: str, deadline: float = 0.0, *, speed: float) -> SynthesisJob:
        return SynthesisJob(
            text, self.voice, speed, deadline=deadline, session_id=self.session_id,
            low_latency=self.low_latency, timestamps=self.engine.info.capabilities.timestamps,
        )  # fmt: skip

    def _speed(self, rate: float) -> float:
        """The job's speed: the context's, times an SSML prosody rate where the engine honours speed.
        An engine without `speed` reads at its own pace (refusing mid-stream would end the answer)."""
        if rate == 1.0 or not self.engine.info.capabilities.speed:
            return self.speed
        return min(4.0, max(0.25, self.speed * rate))

    def _launch(self, job: _Job) -> None:
        job.attempt += 1
        job.attempt_at = job.progress_at = self.clock.now()
        job.task = asyncio.get_running_loop().create_task(self._run_job(job, job.attempt))

    def _add_audio(self, job: _Job, chunk: np.ndarray) -> None:
        if not chunk.size:
            return
        job.samples += len(chunk)
        job.queued_samples += len(chunk)
        job.progress_at = self.clock.now()
        job.queue.put_nowait(chunk)
        self._wake_consumer.set()

    async def _run_job(self, job: _Job, attempt: int) -> None:
        engine = job.engine
        rate = engine.info.sample_rate
        resampler = StreamResampler(rate, self.sample_rate) if rate != self.sample_rate else None
        try:
            if job.silence:  # an SSML break before this piece: real silence in the audio
                self._add_audio(job, np.zeros(job.silence, dtype=np.float32))
            async for chunk in engine.synthesize(job.job):
                if job.attempt != attempt:
                    return  # superseded (a stall moved it) as this chunk came: it runs elsewhere now
                if isinstance(chunk, WordTimings):
                    job.queue.put_nowait(chunk)
                    continue
                self._add_audio(job, resampler.process(chunk) if resampler is not None else chunk)
            if resampler is not None:
                self._add_audio(job, resampler.flush())
            if job.samples and self._source is not None:
                self._source.succeeded(job.engine_name, job.attempt_at)
            job.queue.put_nowait(_END)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if job.attempt != attempt:
                return  # a stalled attempt that failed as it was abandoned: its job runs elsewhere
            log.warning(
                "synthesis failed", exc_info=True,
                extra={"session_id": self.session_id, "engine": job.engine_name},
            )  # fmt: skip
            if self._fail_over(job, failover.ERROR):
                return
            job.queue.put_nowait(exc)
        finally:
            if job.attempt == attempt:
                self._job_ended(job)

    def _job_ended(self, job: _Job) -> None:
        job.finished = True
        self._first_job_done = True
        wall = self.clock.now() - job.submitted_at
        self.stats.synth_wall_s += wall
        audio_s = max(0, job.samples - job.silence) / self.sample_rate
        self.planner.observe(chars=len(job.job.text), audio_s=audio_s, wall_s=wall)
        self.phrasing.observe_job(wall_s=wall, audio_s=audio_s, engine_speed=self._engine_speed())
        self._wake_producer.set()
        self._wake_consumer.set()

    # -- failover -------------------------------------------------------------------------------

    def _check_engine(self) -> None:
        """Before a segment starts: leave an engine that takes no new work for a fallback, if any
        (with none, the segment goes to it anyway: a draining engine still finishes its contexts)."""
        if self._source is None:
            return
        reason = self._source.unusable(self.engine_name)
        if reason is not None:
            self._switch(reason)

    def _switch(self, reason: str) -> bool:
        """Make the next engine of the chain the context's engine; False if there is none."""
        assert self._source is not None
        failed = self.engine_name
        target = self._source.fallback(
            failed, voice=self.voice, speed=self.speed, skip={*self._tried, failed}
        )
        if target is None:
            return False
        self._tried.add(failed)
        self._releases.append(target.release)
        self.engine, self.engine_name, self.voice = target.engine, target.name, target.voice
        self.degraded = True
        self.stats.failovers += 1
        self._source.failed_over(failed, target.name, reason)
        log.warning(
            "context moved to a fallback engine",
            extra={"session_id": self.session_id, "from": failed, "to": target.name, "reason": reason},
        )
        return True

    def _fail_over(self, job: _Job, reason: str) -> bool:
        """`job`'s engine failed it: move the context to a fallback (unless it already has) and run
        every unfinished job of that engine again there. False when there is nowhere to go."""
        if self._cancelled or self._source is None:
            return False
        failed = job.engine_name
        if failed == self.engine_name and not self._switch(reason):
            return False
        for other in self._jobs:
            if not other.finished and other.engine_name == failed:
                self._restart(other)
        return True

    def _restart(self, job: _Job) -> None:
        """Synthesize `job` again, whole, on the context's engine; its audio so far is dropped, and if
        some of it was emitted, the consumer fades that out first (`_RESTART`)."""
        job.job.cancel.cancel()
        old = job.task
        spoken = self.front_end.respeak(job.piece.original, self.engine.info.capabilities.text_front_end)
        job.piece = Piece(job.piece.original, spoken, job.piece.pause_s, job.piece.rate)
        job.job = self._synthesis_job(spoken.text, job.job.deadline, speed=self._speed(job.piece.rate))
        job.engine, job.engine_name, job.degraded = self.engine, self.engine_name, True
        job.queue = asyncio.Queue()
        job.samples = job.queued_samples = 0
        job.origin, job.words = None, []  # timed again from the new attempt's audio
        if job.emitted:
            job.queue.put_nowait(_RESTART)
        self._launch(job)
        if old is not None and old is not asyncio.current_task():
            old.cancel()
        self._wake_consumer.set()

    def _run_dry_at(self, job: _Job) -> float:
        """When the listener runs out of the audio ahead of `job`'s next sample."""
        at = self._playback_ends_at()
        for other in self._jobs:
            if other is job:
                return at + job.queued_samples / self.sample_rate
            at += self._audio_to_come_s(other)
        return at

    def _stall_wait_s(self) -> float | None:
        """How long until the earliest unfinished job counts as stalled (0: one is); None if none can."""
        if self._source is None or self._cancelled:
            return None
        now = self.clock.now()
        waits = [
            stall_deadline(progress_at=j.progress_at, run_dry_at=self._run_dry_at(j), stall_s=self.stall_s)
            - now
            for j in self._jobs
            if not j.finished
        ]
        return max(0.0, min(waits)) if waits else None

    def _fail_stalled(self) -> None:
        now = self.clock.now()
        for job in list(self._jobs):
            if job.finished:
                continue
            due = stall_deadline(
                progress_at=job.progress_at, run_dry_at=self._run_dry_at(job), stall_s=self.stall_s
            )
            if now >= due and not self._fail_over(job, failover.STALL):
                job.progress_at = now  # nowhere to go: give it another `stall_s` before asking again

    async def _produce(self) -> None:
        while not self._cancelled:
            self._try_start_jobs()
            if self.finished:
                # The last text may have started no job (an emoji or punctuation alone): no job's
                # audio will wake the consumer to see that the context is over, so wake it here.
                self._wake_consumer.set()
            timeout = None
            if self.segmenter.pending.strip() and not self._done:
                timeout = self.phrasing.next_wake(self.clock.now())
            self._wake_producer.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake_producer.wait(), timeout)

    # -- consumer -----------------------------------------------------------------------------

    def _emit(self, samples: np.ndarray) -> AudioOut:
        now = self.clock.now()
        if self.stats.first_audio_at is None:
            self.stats.first_audio_at = now
        self.stats.audio_samples += samples.size
        if self._held_until is not None:
            self._held_s += samples.size / self.sample_rate
        else:
            self.playout.on_send(now, samples.size / self.sample_rate)
        return AudioOut(samples)

    def _words_out(self, job: _Job, words: list[WordTiming]) -> tuple[SpokenWord, ...]:
        """Words as the engine timed them (seconds into its audio, offsets into the text it was given)
        placed in the context's audio and mapped back to the segment's text as the client sent it:
        the one place that maps an engine's words back. Spoken words of one original token ("five",
        "dollars" of "$5") become that one word, from the first's start to the last's end."""
        assert job.origin is not None
        # The engine's audio starts after any SSML break silence the job begins with.
        origin_ms = (job.origin + job.silence) * 1000.0 / self.sample_rate
        original, spoken = job.piece.original, job.piece.spoken
        out: list[SpokenWord] = []
        for word in words:
            lo, hi = spoken.to_original(word.char_start, word.char_end)
            # A seam overlaps two segments by the crossfade: a segment's first word starts no earlier
            # than the last one before it ended, so words stay in order.
            start = max(origin_ms + word.start_s * 1000.0, self._words_end_ms)
            self._words_end_ms = max(origin_ms + word.end_s * 1000.0, start)
            if out and (out[-1].char_start, out[-1].char_end) == (lo, hi):
                out[-1] = replace(out[-1], end_ms=self._words_end_ms)
                continue
            out.append(SpokenWord(original[lo:hi] or word.word, start, self._words_end_ms, lo, hi))
        return tuple(out)

    def _pause_wait_s(self, job: _Job) -> float | None:
        """While `job` has no audio yet and the pause before it may stretch: 0 when the listener is
        about to run dry (send a step of silence now), else how long until then; None: just wait."""
        if job.pause_s <= 0 or job.samples > 0 or self._held_until is not None or job.finished:
            return None
        return max(0.0, self.playout.lead_s(self.clock.now()) - PAUSE_STEP_S)

    def _stretch_pause(self, job: _Job) -> AudioOut:
        step = min(PAUSE_STEP_S, job.pause_s)
        if not job.stretched:
            job.stretched = True
            self.stats.pauses_stretched += 1
        job.pause_s -= step
        self.stats.pause_stretch_s += step
        silence = self.stitcher.push(np.zeros(round(step * self.sample_rate), dtype=np.float32))
        return self._emit(silence)

    async def events(self) -> AsyncIterator[ContextEvent]:
        """The context's output, in order. Single consumer; closing it cancels the context."""
        producer = asyncio.get_running_loop().create_task(self._produce())
        try:
            async for event in self._consume():
                yield event
        finally:
            if not self.finished:
                self.cancel()
            self._release_engines()
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer
            for job in self._jobs:
                if job.task is not None and not job.task.done():
                    job.task.cancel()

    async def _consume(self) -> AsyncIterator[ContextEvent]:
        announced = -1
        while True:
            if self._cancelled:
                tail = self.stitcher.fade_out()
                if tail.size:
                    yield self._emit(tail)
                yield ContextDone(self.stats.audio_samples * 1000.0 / self.sample_rate, cancelled=True)
                return
            if not self._jobs:
                if self.finished:
                    tail = self.stitcher.finish()
                    if tail.size:
                        yield self._emit(tail)
                    yield ContextDone(self.stats.audio_samples * 1000.0 / self.sample_rate)
                    return
                self._wake_consumer.clear()
                await self._wake_consumer.wait()
                continue
            job = self._jobs[0]
            stretch = False
            if job.queue.empty():
                stall = self._stall_wait_s()
                if stall == 0.0:
                    self._fail_stalled()
                    continue
                timeout = self._pause_wait_s(job)
                stretch = timeout == 0.0
            # A segment is announced with the first thing it sends (audio, a pause step, its end), not
            # when its job starts: by then a failover before its first audio has set `degraded`.
            if announced != job.segment_id and (stretch or not job.queue.empty()):
                announced = job.segment_id
                self.stitcher.start_segment()
                self.stats.segments += 1
                segment_start = self.stats.audio_samples
                yield SegmentStarted(
                    job.segment_id, job.piece.original, degraded=job.degraded, spoken=job.piece.spoken
                )
                continue  # the job may have moved to a fallback meanwhile: look again
            if job.queue.empty():
                if stretch:
                    yield self._stretch_pause(job)
                    continue
                timeout = stall if timeout is None else timeout if stall is None else min(timeout, stall)
                self._wake_consumer.clear()
                if timeout is None:
                    await self._wake_consumer.wait()
                    continue
                woken = asyncio.ensure_future(self._wake_consumer.wait())
                try:  # on the context's clock: a test's FakeClock decides when the listener runs dry
                    await self.clock.wait(woken, timeout)
                finally:
                    woken.cancel()
                continue
            item = job.queue.get_nowait()
            if isinstance(item, WordTimings):
                job.words.extend(item.words)  # placed when its audio comes: a pause may go first
            elif item is _RESTART:  # the segment starts over on a fallback: fade out what is held of it
                tail = self.stitcher.fade_out()
                if tail.size:
                    yield self._emit(tail)
                self.stitcher.start_segment()
            elif item is _END:
                self.stitcher.end_segment()
                self._jobs.popleft()
                self._wake_producer.set()
                audio_ms = (self.stats.audio_samples - segment_start) * 1000.0 / self.sample_rate
                yield SegmentDone(job.segment_id, audio_ms)
            elif isinstance(item, BaseException):
                self._jobs.popleft()
                yield ContextError("engine_error", f"synthesis failed: {item}")
                self.cancel()
            else:
                assert isinstance(item, np.ndarray)
                job.queued_samples -= item.size
                job.emitted += item.size
                self._wake_producer.set()
                if job.origin is None:
                    job.origin = self.stitcher.next_sample_at(self.stats.audio_samples)
                if job.words:
                    words, job.words = job.words, []
                    yield WordsOut(job.segment_id, self._words_out(job, words))
                out = self.stitcher.push(item)
                if out.size:
                    yield self._emit(out)
