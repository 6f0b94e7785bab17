"""Drives a `RealtimeSession` with no socket: a scripted engine, a recording transport, a `FakeClock`.

In the manner of sans-I/O protocol tests (the `websockets` library's `tests/test_protocol.py`):
a test issues commands, steps the clock, and asserts on exactly what the session handed its
transport, and when. Nothing here waits on real time: the engine synthesizes at once, pacing
and timeouts wait on the fake clock, and `settle` only lets the event loop run.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from realtime.control.settings import PlannerSettings
from realtime.control.voices import Selection, UnknownModel
from realtime.engines.base import (
    EngineCapabilities,
    EngineInfo,
    EngineStats,
    SchedulingHints,
    SynthesisJob,
    Voice,
)
from realtime.engines.tone.engine import tone_samples
from realtime.session.clock import FakeClock
from realtime.session.config import SessionConfig, apply_update
from realtime.session.context import SpeechContext
from realtime.session.deps import SessionDeps
from realtime.session.limits import SessionLimits
from realtime.session.realtime import RealtimeSession

RATE = 24000
"""The engine's rate and the session's default output rate: frames are the engine's samples."""
MS_PER_CHAR = 10.0
FRAME_MS = 20.0
BYTES_PER_MS = RATE * 2 / 1000.0  # s16le


class ScriptedEngine:
    """Deterministic and instant: a job yields the tone engine's audio for its text in `chunk_ms`
    pieces, one per event-loop step. Jobs from number `hold_from` on wait for `release()` first.
    `load` is other sessions' work: the engine's load is that plus the jobs running here."""

    def __init__(self, *, load: float = 0.0, chunk_ms: float = 50.0, hold_from: int | None = None) -> None:
        self.info = EngineInfo(
            name="scripted", sample_rate=RATE, voices=(Voice("v", "v"),), default_voice="v",
            capabilities=EngineCapabilities(speed=True),
            hints=SchedulingHints(audio_per_char_s=MS_PER_CHAR / 1000.0, nominal_speed=100.0),
        )  # fmt: skip
        self.stats = EngineStats()
        self.ready, self.queue_depth, self.capacity = True, 0, 1
        self.others_load, self.running = load, 0
        self.chunk = int(RATE * chunk_ms / 1000.0)
        self.hold_from = hold_from
        self.jobs: list[SynthesisJob] = []
        self.produced_s = 0.0
        self._gate = asyncio.Event()

    @property
    def load(self) -> float:
        return self.others_load + self.running / self.capacity

    def release(self) -> None:
        self._gate.set()

    def synthesize(self, job: SynthesisJob) -> AsyncIterator[np.ndarray]:
        self.jobs.append(job)
        return self._run(job, len(self.jobs) - 1)

    async def _run(self, job: SynthesisJob, index: int) -> AsyncIterator[np.ndarray]:
        self.running += 1  # waiting or running: both count in an engine's load
        try:
            if self.hold_from is not None and index >= self.hold_from:
                await self._gate.wait()
            audio = tone_samples(job.text, "mid", RATE, MS_PER_CHAR)
            for start in range(0, audio.size, self.chunk):
                if job.cancel.cancelled:
                    return
                chunk = audio[start : start + self.chunk]
                self.produced_s += chunk.size / RATE
                yield chunk
                await asyncio.sleep(0)
        finally:
            self.running -= 1


@dataclass
class Sent:
    """One thing the session handed its transport."""

    at: float
    event: dict[str, Any] | None = None
    audio: bytes = b""
    context_id: str = ""

    @property
    def type(self) -> str:
        return "audio" if self.event is None else str(self.event["type"])


class RecordingTransport:
    """Records every send with the fake time it began; `stall()` makes sends block until `resume()`."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.sent: list[Sent] = []
        self.blocked = 0
        """Sends waiting on a stall."""
        self._flowing = asyncio.Event()
        self._flowing.set()

    def stall(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    async def _wait(self) -> None:
        if not self._flowing.is_set():
            self.blocked += 1
            try:
                await self._flowing.wait()
            finally:
                self.blocked -= 1

    async def send_audio(self, data: bytes, context_id: str) -> None:
        at = self.clock.now()
        await self._wait()
        self.sent.append(Sent(at, audio=data, context_id=context_id))

    async def send_event(self, event: dict[str, Any]) -> None:
        at = self.clock.now()
        await self._wait()
        self.sent.append(Sent(at, event=event))

    def events(self, kind: str | None = None, **fields: Any) -> list[dict[str, Any]]:
        return [
            s.event
            for s in self.sent
            if s.event is not None
            and (kind is None or s.event["type"] == kind)
            and all(s.event.get(k) == v for k, v in fields.items())
        ]

    def frames(self, context_id: str | None = None) -> list[Sent]:
        return [
            s for s in self.sent if s.event is None and (context_id is None or s.context_id == context_id)
        ]

    def audio_ms(self, context_id: str | None = None) -> float:
        return sum(len(s.audio) for s in self.frames(context_id)) / BYTES_PER_MS

    def index(self, kind: str, **fields: Any) -> int:
        """Position of the first matching event in everything sent."""
        for i, s in enumerate(self.sent):
            if (
                s.event is not None
                and s.event["type"] == kind
                and all(s.event.get(k) == v for k, v in fields.items())
            ):
                return i
        raise AssertionError(f"no {kind} {fields} was sent")


class SessionHarness:
    """A session on a scripted engine and a fake clock, run against a recording transport."""

    def __init__(
        self,
        *,
        engine: ScriptedEngine | None = None,
        preset: dict[str, Any] | None = None,
        limits: SessionLimits | None = None,
        start_hold_s: float = 0.0,
        max_ahead_s: float = 20.0,
        send_timeout_s: float = 10.0,
    ) -> None:
        self.clock = FakeClock(100.0)
        self.engine = engine or ScriptedEngine()
        self.transport = RecordingTransport(self.clock)
        self.send_timeout_s = send_timeout_s
        planner = PlannerSettings()

        def resolve(engine_name: str | None, voice: str | None) -> Selection:
            if engine_name not in (None, "scripted"):
                raise UnknownModel(f"model '{engine_name}' does not exist")
            return Selection(self.engine, voice or "v")  # type: ignore[arg-type]

        def new_context(selection: Selection, **options: Any) -> SpeechContext:
            return SpeechContext(
                selection.engine, voice=selection.voice, planner=planner, max_ahead_s=max_ahead_s,
                clock=self.clock, **options,
            )  # fmt: skip

        deps = SessionDeps(
            resolve=resolve, new_context=new_context, start_hold_s=start_hold_s,
            limits=limits or SessionLimits(), clock=self.clock,
        )  # fmt: skip
        config = apply_update(SessionConfig(), preset or {})
        self.session = RealtimeSession(deps, session_id="sess_test", config=config, transport="test")
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SessionHarness:
        t = self.transport
        self.task = asyncio.create_task(
            self.session.run(t.send_audio, t.send_event, send_timeout_s=self.send_timeout_s)
        )
        await self.settle()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        if not self.task.done():
            self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    async def settle(self, rounds: int = 300) -> None:
        """Let every task run as far as it can without the clock moving."""
        for _ in range(rounds):
            await asyncio.sleep(0)

    async def until(self, condition: Callable[[], bool], rounds: int = 20_000) -> None:
        for _ in range(rounds):
            if condition():
                return
            await asyncio.sleep(0)
        raise AssertionError("the session never got there")

    async def advance(
        self, seconds: float, step_s: float = 0.005, each: Callable[[], None] | None = None
    ) -> None:
        """Move the clock forward in small steps, letting the session catch up after each (the steps
        land on `start + k * step_s`, the last on `start + seconds`, so no rounding drift builds up)."""
        start = self.clock.now()
        steps = math.ceil(round(seconds / step_s, 6))
        for k in range(1, steps + 1):
            self.clock.advance(
                max(0.0, (start + seconds if k == steps else start + k * step_s) - self.clock.now())
            )
            await self.settle(60)
            if each is not None:
                each()

    async def finish(self) -> None:
        """`session.close`: everything open is spoken and sent, then `run` returns."""
        assert self.task is not None
        self.session.close_when_done()
        await self.until(self.task.done)
        self.task.result()


def voiced(seconds: float, rate: int = 16000, f0: float = 140.0) -> np.ndarray:
    """A synthetic vowel (harmonics under three formants, syllable-rate swell) that webrtcvad takes for
    speech: barge-in without a speech model. int16 mono."""
    t = np.arange(int(rate * seconds)) / rate
    x = np.zeros_like(t)
    for h in range(1, 30):
        f = h * f0
        weight = (
            np.exp(-(((f - 700) / 300) ** 2)) + 0.6 * np.exp(-(((f - 1200) / 400) ** 2))
            + 0.3 * np.exp(-(((f - 2500) / 500) ** 2)) + 0.05
        )  # fmt: skip
        x += weight * np.sin(2 * np.pi * f * t * (1 + 0.01 * np.sin(2 * np.pi * 5 * t)))
    x *= 0.5 * (1 + 0.5 * np.sin(2 * np.pi * 4 * t))
    return np.round(0.3 * x / np.abs(x).max() * 32767).astype(np.int16)
