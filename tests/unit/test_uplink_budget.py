"""The uplink token bucket: real time passes, floods are cut off, credit comes back."""

import pytest

from realtime.session.uplink_budget import UplinkBudget


def test_real_time_audio_always_passes() -> None:
    budget = UplinkBudget(now=0.0, rate=2.0, burst_s=5.0)
    assert all(budget.take(i * 0.02, 0.02) for i in range(10_000))
    assert budget.dropped_s == 0.0


def test_a_burst_passes_up_to_burst_s_then_is_dropped() -> None:
    budget = UplinkBudget(now=0.0, rate=2.0, burst_s=5.0)
    taken = sum(budget.take(0.0, 0.1) for _ in range(100))
    assert taken == 50  # 5 s of the 10 s sent at once
    assert budget.dropped_s == pytest.approx(5.0)


def test_credit_refills_at_rate_and_is_capped_at_burst() -> None:
    budget = UplinkBudget(now=0.0, rate=2.0, burst_s=5.0)
    assert budget.take(0.0, 5.0) and not budget.take(0.0, 0.1)
    assert budget.take(1.0, 2.0) and not budget.take(1.0, 0.1)  # one second later: two seconds of credit
    assert not budget.take(100.0, 5.1)  # a long pause refills to the burst, no further
    assert budget.take(100.0, 5.0)


def test_a_frame_longer_than_the_burst_never_passes() -> None:
    budget = UplinkBudget(now=0.0, rate=2.0, burst_s=5.0)
    assert not budget.take(0.0, 131.0)  # a 1 MiB frame of 8 kHz μ-law
    assert budget.take(0.0, 0.02)  # and it spent nothing


@pytest.mark.parametrize("rate,burst", [(0.0, 1.0), (1.0, 0.0), (-1.0, 1.0)])
def test_bad_parameters_are_refused(rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        UplinkBudget(now=0.0, rate=rate, burst_s=burst)
