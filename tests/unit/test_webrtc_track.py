"""The WebRTC output track's pacing and queue, stepped with a fake clock."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from realtime.session.clock import FakeClock
from realtime.transport.webrtc_track import FramePacer, PacedAudioTrack


def test_pacer_keeps_an_absolute_schedule() -> None:
    pacer = FramePacer(0.02)
    assert pacer.due(100.0) == 100.0
    pacer.sent()
    # A frame that left late does not push the next one back: no drift.
    assert pacer.due(100.013) == pytest.approx(100.02)
    pacer.sent()
    assert pacer.due(100.021) == pytest.approx(100.04)


def test_pacer_resyncs_after_a_long_stall_instead_of_bursting() -> None:
    pacer = FramePacer(0.02, resync_s=0.2)
    pacer.due(0.0)
    pacer.sent()
    assert pacer.due(1.0) == 1.0 and pacer.resyncs == 1
    pacer.sent()
    assert pacer.due(1.0) == pytest.approx(1.02)


def frame(value: int, n: int = 960) -> np.ndarray:
    return np.full(n, value, np.int16)


def test_track_sends_queued_frames_then_silence() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        track = PacedAudioTrack(clock=clock, capacity_frames=3)
        await track.push(frame(1000), "a")
        out = [await track.recv() for _ in range(3)]
        levels = [int(np.abs(f.to_ndarray()).max()) for f in out]
        assert levels == [1000, 0, 0]
        assert [f.pts for f in out] == [0, 960, 1920]
        assert all(f.sample_rate == 48000 and f.samples == 960 for f in out)
        assert track.stats.speech_frames == 1 and track.stats.silent_frames == 2

    asyncio.run(scenario())


def test_push_waits_while_the_queue_is_full() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        track = PacedAudioTrack(clock=clock, capacity_frames=2)
        await track.push(frame(1), "a")
        await track.push(frame(2), "a")
        third = asyncio.ensure_future(track.push(frame(3), "a"))
        await asyncio.sleep(0.01)
        assert not third.done(), "a full queue holds the writer back"
        await track.recv()
        await asyncio.wait_for(third, 1)
        assert track.queued_ms == 40.0

    asyncio.run(scenario())


def test_drop_fades_the_next_frame_and_keeps_other_contexts() -> None:
    async def scenario() -> None:
        track = PacedAudioTrack(clock=FakeClock(), capacity_frames=5)
        for _ in range(3):
            await track.push(frame(10000), "a")
        await track.push(frame(500), "b")
        assert track.drop("a") == 40.0  # two frames gone; the first one plays as a 10 ms fade
        faded = (await track.recv()).to_ndarray().reshape(-1)
        assert faded[0] == 10000 and 0 < faded[200] < 10000 and not faded[480:].any()
        assert np.all(np.diff(faded[:480].astype(int)) <= 0), "a monotonic fade, no click"
        assert int((await track.recv()).to_ndarray().max()) == 500
        assert track.drop("nothing") == 0.0

    asyncio.run(scenario())


def test_wrong_frame_size_is_refused_and_stop_ends_the_track() -> None:
    async def scenario() -> None:
        track = PacedAudioTrack(clock=FakeClock())
        with pytest.raises(ValueError):
            await track.push(frame(1, 100), "a")
        track.stop()
        from aiortc.mediastreams import MediaStreamError

        with pytest.raises(MediaStreamError):
            await track.recv()

    asyncio.run(scenario())
