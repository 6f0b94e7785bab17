"""The engine contract every TTS backend implements.

Engines are loaded once per process and shared by every session. A session
hands an engine one `SynthesisJob` per text segment; the engine streams float32
mono audio back and must honour `job.cancel` between chunks so barge-in and
client disconnects free the worker promptly.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from ..ewma import Ewma

TextFrontEnd = Literal["full", "markup", "off"]
"""What the shared text front end does to an engine's text (`realtime/text/normalize.py`): `full`
(numbers, money, dates, units, URLs, abbreviations spoken out in English; markup and emoji
stripped), `markup` (markup and emoji stripped only), `off` (the text as written)."""
Granularity = Literal["segment", "sentence", "chunk", "token"]
"""How finely audio streams out of a job: `segment` (all of it at the end), `sentence` (one piece per
sentence, or per bounded run of a long one), `chunk` (fixed slices), `token` (as a model generates)."""


@dataclass(frozen=True)
class Voice:
    """A voice an engine can speak with."""

    id: str
    name: str
    language: str | None = None


@dataclass(frozen=True)
class EngineCapabilities:
    """What an engine can do for a request, as opposed to how fast it is (`SchedulingHints`).

    Requests are checked against these at the edge (`EngineInfo.check`), clients read them in
    `/v1/info`, and the contract test (tests/integration/test_engine_contract.py) holds every
    registered engine to what it declares. The defaults promise nothing.
    """

    streaming: Granularity = "segment"
    speed: bool = False
    """Honours `SynthesisJob.speed`. Without it, a speed other than 1 is refused (`UnsupportedSpeedError`)
    rather than ignored: an engine that cannot change speed gets no silent time-stretch either."""
    batching: bool = False
    """Serves concurrent jobs of different sessions in shared model calls: throughput grows with load."""
    timestamps: bool = False
    """Times its words: for a job with `timestamps` set it yields `WordTimings` among its audio, each
    before the audio it describes (the contract test checks them: in order, within the audio)."""
    voice_blending: bool = False
    """Speaks a weighted mix of its voices, named `a:0.7+b:0.3` (Kokoro-FastAPI's syntax; weights are
    normalized, a part without one weighs 1): `EngineInfo.has_voice` accepts such names."""
    voice_cloning: bool = False
    """Speaks in a voice given by a reference recording. Reserved like `timestamps`."""
    device: str = "cpu"
    """Where this instance runs its inference (`cpu`, `cuda`, `remote` for an upstream server)."""
    text_front_end: TextFrontEnd = "full"
    """How much of the text front end the engine wants under `text.normalize = "auto"`: `full` for an
    engine that reads raw text (a neural model says "$5" as "dollar five" or not at all), `markup` for
    one that reads numbers itself, in its voice's language (espeak), `off` for text as written."""


@dataclass(frozen=True)
class SchedulingHints:
    """Priors the scheduler starts from until it has measured the engine (`SpeechContext`, `ChunkPlanner`)."""

    nominal_speed: float = 10.0
    """Expected audio seconds per wall second for one job: a seed for the planner's EWMA, and the
    synthesis speed assumed for deadlines until `EngineStats.recent_speed` has a measurement."""
    audio_per_char_s: float = 0.065
    """Expected audio seconds per input character; a seed for the planner's audio model."""
    audio_per_segment_s: float = 0.0
    """Expected audio every segment adds whatever its length (lead-in, trailing silence); a seed too."""


@dataclass(frozen=True)
class EngineInfo:
    """An engine's identity, output format, voices, capabilities and scheduling hints."""

    name: str
    sample_rate: int
    voices: tuple[Voice, ...]
    default_voice: str
    capabilities: EngineCapabilities = EngineCapabilities()
    hints: SchedulingHints = SchedulingHints()

    def has_voice(self, voice: str) -> bool:
        if self.capabilities.voice_blending and is_blend(voice):
            try:
                return all(self.has_voice(part) for part, _ in parse_blend(voice))
            except ValueError:
                return False
        return any(v.id == voice for v in self.voices)

    def _unknown_part(self, voice: str) -> str:
        """The part of a blend that names no voice (the whole name if it is not a blend)."""
        if self.capabilities.voice_blending and is_blend(voice):
            try:
                return next((p for p, _ in parse_blend(voice) if not self.has_voice(p)), voice)
            except ValueError:
                return voice
        return voice

    def check(self, voice: str, speed: float = 1.0) -> None:
        """Refuse a request this engine cannot serve, with an error that names the field to fix."""
        if not self.has_voice(voice):
            raise UnknownVoiceError(f"unknown {self.name} voice {self._unknown_part(voice)!r}")
        if speed != 1.0 and not self.capabilities.speed:
            raise UnsupportedSpeedError(
                f"engine '{self.name}' cannot change speed (asked for {speed:g}); send speed 1.0 "
                "or choose an engine that can"
            )


def is_blend(voice: str) -> bool:
    """Whether `voice` names a mix of voices (`a+b`, `a:0.7+b:0.3`) rather than one voice."""
    return "+" in voice or ":" in voice


def parse_blend(voice: str) -> list[tuple[str, float]]:
    """`a:0.7+b:0.3` as [(a, 0.7), (b, 0.3)] with the weights normalized to sum 1 (a part without a
    weight weighs 1); ValueError for an empty part or a weight that is not a positive number."""
    parts: list[tuple[str, float]] = []
    for piece in voice.split("+"):
        name, _, weight = piece.strip().partition(":")
        name = name.strip()
        try:
            value = float(weight) if weight.strip() else 1.0
        except ValueError:
            raise ValueError(f"voice blend {voice!r}: weight {weight!r} is not a number") from None
        if not name or not (value > 0 and value < float("inf")):
            raise ValueError(f"voice blend {voice!r}: each part needs a name and a positive weight")
        parts.append((name, value))
    total = sum(w for _, w in parts)
    return [(name, w / total) for name, w in parts]


@dataclass(frozen=True)
class WordTiming:
    """When one word of a job's text is spoken, in seconds from the start of the job's audio."""

    word: str
    start_s: float
    end_s: float
    char_start: int
    """Offsets of the word in `SynthesisJob.text` (the segment as the engine got it): `text[char_start:
    char_end] == word`. A text front end that rewrote the segment maps them back to what the client sent."""
    char_end: int


@dataclass(frozen=True)
class WordTimings:
    """An item of a timed job's stream: words of its text, before the audio that speaks them."""

    words: tuple[WordTiming, ...]


class CancelToken:
    """A thread-safe flag checked by engine workers between chunks."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


@dataclass
class SynthesisJob:
    """One segment of text to speak, with the deadline it must beat."""

    text: str
    voice: str
    speed: float = 1.0
    deadline: float = 0.0
    """Monotonic time by which the job should start: when the audio ahead of it runs out, less the time
    it takes to synthesize. Its session may move it while the job waits for a worker."""
    session_id: str = ""
    low_latency: bool = False
    """The session asked for `latency: "low"`: engines that can trade throughput for latency do."""
    timestamps: bool = False
    """Ask for word timings: an engine with `capabilities.timestamps` then yields `WordTimings` items
    among the audio; without the flag every engine yields audio only."""
    cancel: CancelToken = field(default_factory=CancelToken)


class EngineStats:
    """Counters an engine keeps about its own work (read by /metrics and tests)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.jobs_started = 0
        self.jobs_completed = 0
        self.jobs_cancelled = 0
        self.jobs_failed = 0
        self.chars = 0
        self.audio_seconds = 0.0
        self.busy_seconds = 0.0
        self.cpu_seconds = 0.0
        """CPU time of the threads that ran the jobs: with one intra-op thread per worker, all of the
        inference. Audio per CPU second × cores is the engine's capacity on this machine right now."""
        self._speed = Ewma(0.0, alpha=0.1)

    def record(self, *, outcome: str, chars: int, audio_s: float, busy_s: float, cpu_s: float = 0.0) -> None:
        with self._lock:
            if outcome == "completed":
                self.jobs_completed += 1
            elif outcome == "cancelled":
                self.jobs_cancelled += 1
            else:
                self.jobs_failed += 1
            self.chars += chars
            self.audio_seconds += audio_s
            self.busy_seconds += busy_s
            self.cpu_seconds += cpu_s
            if outcome == "completed" and audio_s > 0 and busy_s > 0:
                self._speed.update(audio_s / busy_s)

    @property
    def recent_speed(self) -> float | None:
        """Audio seconds per busy second of recent completed jobs (EWMA): how long a job will take
        once it runs, without the wait for a worker. None before the first."""
        return self._speed.value if self._speed.samples else None

    def started(self) -> None:
        with self._lock:
            self.jobs_started += 1


@runtime_checkable
class Engine(Protocol):
    """A loaded TTS model shared by all sessions."""

    info: EngineInfo
    stats: EngineStats

    async def start(self) -> None:
        """Load and warm the model (off the event loop)."""

    async def stop(self) -> None:
        """Release workers and model memory."""

    @property
    def ready(self) -> bool:
        """True once `start` has loaded and warmed the model."""

    @property
    def queue_depth(self) -> int:
        """Jobs waiting for a worker."""

    @property
    def load(self) -> float:
        """Jobs running or waiting per worker (0: idle; 1: every worker busy)."""

    @property
    def capacity(self) -> int:
        """Jobs it runs at once: `load × capacity` jobs are running or waiting, so a session can
        tell its own share of the load from everyone else's."""

    def synthesize(self, job: SynthesisJob) -> AsyncIterator[np.ndarray | WordTimings]:
        """Stream float32 mono audio at `info.sample_rate` for `job` (and, only if `job.timestamps` is
        set and the engine can, `WordTimings`); `info.check` refuses what the engine cannot do before
        any work starts."""


class EngineError(RuntimeError):
    """An engine failed to load or to synthesize."""


class UnsupportedRequest(EngineError):
    """A request asks for something the engine does not offer; `param` names the field to change."""

    param = ""


class UnknownVoiceError(UnsupportedRequest):
    param = "voice"


class UnsupportedSpeedError(UnsupportedRequest):
    param = "speed"
