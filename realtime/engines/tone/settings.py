"""The tone engine's settings (`[tone]`, `REALTIME_TONE__*`); pydantic only."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ToneSettings(BaseModel):
    """The synthetic test engine: `speed` x real time, `latency_ms` before the first chunk."""

    sample_rate: int = Field(default=24000, ge=8000, le=48000)
    speed: float = Field(default=50.0, gt=0)
    latency_ms: float = Field(default=5.0, ge=0)
    ms_per_char: float = Field(default=60.0, gt=0)
    chunk_ms: float = Field(default=100.0, gt=0)
    workers: int = Field(default=2, ge=1, le=64)
    load_delay_s: float = Field(default=0.0, ge=0)
    """Simulated model load time, to exercise readiness gating."""
    text_front_end: Literal["full", "markup", "off"] = "off"
    """What the text front end does for it (`EngineCapabilities.text_front_end`): off by default, so a
    test's audio length is its text's; `full` lets a test see what an engine reading raw text gets."""
    timestamps: bool = False
    """Time words (exactly: each character is `ms_per_char`), to test word timings without a model."""
