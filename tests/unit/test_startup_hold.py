"""`StartupHold`: a saturated engine's first audio waits for the second segment, never forever."""

from __future__ import annotations

from realtime.session.startup_hold import StartupHold


def test_idle_engine_holds_nothing() -> None:
    hold = StartupHold(0.6)
    hold.decide(10.0, saturated=False)
    assert hold.decided and not hold.holding() and hold.remaining(10.0) is None


def test_saturated_engine_holds_until_the_second_segment_has_audio() -> None:
    hold = StartupHold(0.6)
    hold.segment_started()
    hold.decide(10.0, saturated=True)
    hold.audio_arrived()
    assert hold.holding() and abs(hold.remaining(10.25) - 0.35) < 1e-9
    assert hold.until == 10.6, "the context counts its deadlines from here while held"
    hold.segment_started()  # announced, but its audio may still be far off
    assert hold.holding()
    hold.audio_arrived()
    assert not hold.holding() and hold.until is None


def test_the_hold_expires_and_can_be_disabled() -> None:
    hold = StartupHold(0.6)
    hold.decide(10.0, saturated=True)
    assert hold.remaining(11.0) == 0.0
    hold.release()
    assert not hold.holding()
    off = StartupHold(0.0)
    off.decide(10.0, saturated=True)
    assert not off.holding()
