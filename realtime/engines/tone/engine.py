"""A deterministic synthetic engine for tests and load tests only (never a default).

Each character becomes `ms_per_char` of a sine whose pitch depends on the
character, so the audio length is an exact function of the text and any
mix-up between sessions is detectable. Work is simulated by sleeping in a
worker thread, so the engine occupies worker slots like real inference does:
a job of A seconds of audio takes `latency_ms + A / speed` seconds.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator

import numpy as np

from ..base import (
    EngineCapabilities,
    EngineInfo,
    EngineStats,
    SchedulingHints,
    SynthesisJob,
    Voice,
    WordTiming,
    WordTimings,
)
from ..gated import GatedEngine
from ..worker_pool import Emit, WorkerPool
from .settings import ToneSettings

VOICES = (Voice("low", "Low tone"), Voice("mid", "Mid tone"), Voice("high", "High tone"))
_BASE_HZ = {"low": 220.0, "mid": 330.0, "high": 440.0}


def tone_samples(text: str, voice: str, sample_rate: int, ms_per_char: float) -> np.ndarray:
    """The exact audio the tone engine produces for `text` (also used by tests as an oracle)."""
    per_char = int(round(sample_rate * ms_per_char / 1000.0))
    t = np.arange(per_char, dtype=np.float32) / sample_rate
    base = _BASE_HZ.get(voice, 330.0)
    parts = []
    for ch in text:
        if ch.isspace():
            parts.append(np.zeros(per_char, dtype=np.float32))
        else:
            freq = base * (1.0 + (ord(ch) % 12) / 12.0)
            parts.append((0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def tone_words(text: str, sample_rate: int, ms_per_char: float) -> tuple[WordTiming, ...]:
    """The exact timings of `text`'s words (runs of non-space characters with a letter or digit) in
    the tone engine's audio: each character lasts `ms_per_char`, rounded to whole samples."""
    per_char_s = int(round(sample_rate * ms_per_char / 1000.0)) / sample_rate
    return tuple(
        WordTiming(m.group(), m.start() * per_char_s, m.end() * per_char_s, m.start(), m.end())
        for m in re.finditer(r"\S+", text)
        if re.search(r"\w", m.group())
    )


class ToneEngine(GatedEngine):
    """Synthetic speech with a configurable speed and first-chunk latency."""

    def __init__(self, config: ToneSettings) -> None:
        self.config = config
        self.stats = EngineStats()
        self.info = EngineInfo(
            name="tone",
            sample_rate=config.sample_rate,
            voices=VOICES,
            default_voice="mid",
            capabilities=EngineCapabilities(
                streaming="chunk",
                speed=True,
                timestamps=config.timestamps,
                text_front_end=config.text_front_end,
            ),
            hints=SchedulingHints(nominal_speed=config.speed, audio_per_char_s=config.ms_per_char / 1000.0),
        )
        self._pool = WorkerPool(config.workers, name="tone", stats=self.stats, sample_rate=config.sample_rate)
        self.gate = self._pool.gate
        self._ready = False

    async def start(self) -> None:
        await asyncio.sleep(self.config.load_delay_s)
        self._ready = True

    async def stop(self) -> None:
        self._ready = False
        await self._pool.close()

    def _work(self, job: SynthesisJob, emit: Emit) -> None:
        cfg = self.config
        audio = tone_samples(job.text, job.voice, cfg.sample_rate, cfg.ms_per_char / job.speed)
        time.sleep(cfg.latency_ms / 1000.0)
        if job.timestamps and cfg.timestamps:
            emit(WordTimings(tone_words(job.text, cfg.sample_rate, cfg.ms_per_char / job.speed)))
        step = max(1, int(cfg.sample_rate * cfg.chunk_ms / 1000.0))
        for start in range(0, len(audio), step):
            if job.cancel.cancelled:
                return
            chunk = audio[start : start + step]
            time.sleep(len(chunk) / cfg.sample_rate / cfg.speed)
            emit(chunk)

    def synthesize(self, job: SynthesisJob) -> AsyncIterator[np.ndarray | WordTimings]:
        self.info.check(job.voice, job.speed)
        return self._pool.stream(job, self._work)
