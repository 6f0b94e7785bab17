"""The outbox between speaker and writer: bounded in frames and in seconds, events capped."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from realtime.session.config import OutputConfig
from realtime.session.outbox import AudioFrame, Outbox, OutboxOverflow


def frame(ms: int, rate: int = 8000) -> AudioFrame:
    output = OutputConfig(encoding="pcm", sample_rate=rate, frame_ms=ms)
    return AudioFrame(np.zeros(rate * ms // 1000, np.int16), "ctx", output)


async def frames_queued_before_blocking(outbox: Outbox, ms: int) -> int:
    queued = 0
    while True:
        try:
            await asyncio.wait_for(outbox.put_audio(frame(ms)), 0.05)
        except TimeoutError:
            return queued
        queued += 1


@pytest.mark.parametrize(("frame_ms", "expected"), [(20, 64), (100, 20), (1000, 2)])
def test_queued_audio_is_bounded_in_frames_and_in_seconds(frame_ms: int, expected: int) -> None:
    async def scenario() -> None:
        outbox = Outbox()
        assert await frames_queued_before_blocking(outbox, frame_ms) == expected
        assert outbox.pending_audio_s <= outbox.max_audio_s + 1e-9
        await outbox.get()  # the writer takes one: room for one more
        await asyncio.wait_for(outbox.put_audio(frame(frame_ms)), 1.0)

    asyncio.run(scenario())


def test_events_past_the_cap_raise_overflow_but_audio_never_counts_as_events() -> None:
    async def scenario() -> None:
        outbox = Outbox(max_events=3)
        await outbox.put_audio(frame(20))
        for i in range(3):
            outbox.put_event({"type": "e", "i": i})
        with pytest.raises(OutboxOverflow):
            outbox.put_event({"type": "one too many"})
        assert len(outbox) == 4

    asyncio.run(scenario())
