"""Session limits: global always, per key only when keys are configured."""

from contextlib import ExitStack

import pytest

from realtime.control.auth import LimitExceeded, SessionLimiter


def test_per_key_limit_applies_to_each_key_and_the_total_to_all() -> None:
    limiter = SessionLimiter(max_total=3, max_per_key=2)
    with ExitStack() as stack:
        stack.enter_context(limiter.acquire("a"))
        stack.enter_context(limiter.acquire("a"))
        with pytest.raises(LimitExceeded, match="API key"):
            stack.enter_context(limiter.acquire("a"))
        stack.enter_context(limiter.acquire("b"))
        with pytest.raises(LimitExceeded, match="server"):
            stack.enter_context(limiter.acquire("c"))
        assert limiter.total == 3
    assert limiter.total == 0
    with limiter.acquire("a"), limiter.acquire("a"):  # released: a's slots are free again
        pass


def test_without_keys_configured_only_the_global_limit_applies() -> None:
    limiter = SessionLimiter(max_total=5, max_per_key=2, per_key=False)
    with ExitStack() as stack:
        for key in (None, None, None, "anything", "anything"):  # anonymous, or a key nobody checks
            stack.enter_context(limiter.acquire(key))
        with pytest.raises(LimitExceeded, match="server"):
            stack.enter_context(limiter.acquire(None))
    assert limiter.total == 0
