"""A tone engine that fails, stalls and recovers on command: failover tests and `bench_failover`.

Not registered in `ENGINES` (no user should pick it): a test or benchmark adds it to a
gateway's registry (`EngineRegistry.register`). The mode is read before a job starts and
between its chunks, from any thread:

- `ok`: the tone engine's audio, unchanged;
- `fail`: a job raises `EngineError` at its next chunk (a model or an upstream dying mid-sentence);
- `stall`: a job brings nothing more until the mode changes (a hung GPU, a silent upstream).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import numpy as np

from realtime.engines.base import EngineError, SynthesisJob
from realtime.engines.gated import GatedEngine
from realtime.engines.tone.engine import ToneEngine
from realtime.engines.tone.settings import ToneSettings

POLL_S = 0.005


class FaultyEngine(GatedEngine):
    def __init__(self, name: str = "faulty", *, gain: float = 1.0, **tone: Any) -> None:
        """`gain` scales its audio: at 0.5 no frame of it is as loud as the tone engine's, so a listener
        can tell which engine made a frame (`bench_failover`)."""
        self._tone = ToneEngine(ToneSettings(**tone))
        self.gate = self._tone.gate  # queue depth, load and capacity are the tone engine's
        self.gain = gain
        self.info = replace(self._tone.info, name=name)
        self.stats = self._tone.stats
        self.mode = "ok"
        self.changed_at = time.monotonic()
        """When the mode last changed (the failover benchmark's zero)."""
        self.jobs = 0
        self.failed_jobs = 0

    def set_mode(self, mode: str) -> None:
        if mode not in ("ok", "fail", "stall"):
            raise ValueError(mode)
        self.mode, self.changed_at = mode, time.monotonic()

    def fail(self) -> None:
        self.set_mode("fail")

    def stall(self) -> None:
        self.set_mode("stall")

    def recover(self) -> None:
        self.set_mode("ok")

    @property
    def ready(self) -> bool:
        return self._tone.ready

    async def start(self) -> None:
        await self._tone.start()

    async def stop(self) -> None:
        await self._tone.stop()

    def synthesize(self, job: SynthesisJob) -> AsyncIterator[np.ndarray]:
        self.info.check(job.voice, job.speed)
        self.jobs += 1
        return self._run(job)

    async def _gate(self, job: SynthesisJob) -> None:
        # Polled: the mode is set from any thread (a test's), where an asyncio.Event cannot be set.
        while self.mode == "stall" and not job.cancel.cancelled:  # noqa: ASYNC110
            await asyncio.sleep(POLL_S)
        if self.mode == "fail":
            self.failed_jobs += 1
            raise EngineError("injected failure")

    async def _run(self, job: SynthesisJob) -> AsyncIterator[np.ndarray]:
        await self._gate(job)
        stream = self._tone.synthesize(job)
        try:
            async for chunk in stream:
                await self._gate(job)
                yield chunk * self.gain if self.gain != 1.0 else chunk
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
