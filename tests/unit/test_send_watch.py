"""`SendWatch`: a stalled send fails the writer; sends that finish in time never do."""

from __future__ import annotations

import asyncio

import pytest

from realtime.session.clock import FakeClock
from realtime.session.send_watch import CHECKS_PER_TIMEOUT, SendWatch

TIMEOUT_S = 0.2
CHECK_S = TIMEOUT_S / CHECKS_PER_TIMEOUT


async def _blocked_send(release: asyncio.Event, sent: list[str], item: str) -> None:
    await release.wait()
    sent.append(item)


def test_a_stalled_send_raises_timeout_and_cancels_the_writer() -> None:
    clock = FakeClock()
    watch = SendWatch(TIMEOUT_S, clock)
    release, sent = asyncio.Event(), []
    send = watch.watched(lambda item: _blocked_send(release, sent, item))
    cancelled = []

    async def writer() -> None:
        try:
            await send("frame")
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def scenario() -> None:
        runner = asyncio.ensure_future(watch.run(writer()))
        await asyncio.sleep(3 * CHECK_S)
        assert not runner.done(), "the send is blocked, but not for longer than the timeout yet"
        clock.advance(TIMEOUT_S + 0.01)
        with pytest.raises(TimeoutError, match="not reading"):
            await asyncio.wait_for(runner, 5)
        assert cancelled == [True] and sent == []

    asyncio.run(scenario())


def test_sends_that_finish_in_time_never_trip_the_watch() -> None:
    clock = FakeClock()
    watch = SendWatch(TIMEOUT_S, clock)
    sent: list[int] = []

    async def send(item: int) -> None:
        await asyncio.sleep(0)
        sent.append(item)

    async def writer() -> str:
        timed = watch.watched(send)
        for i in range(10):
            await timed(i)
            clock.advance(TIMEOUT_S)  # idle time between sends does not count: no send is in progress
            await asyncio.sleep(CHECK_S / 2)
        return "done"

    assert asyncio.run(watch.run(writer())) == "done"
    assert sent == list(range(10)) and not watch.stalled()


def test_a_writer_error_propagates() -> None:
    async def writer() -> None:
        raise ConnectionResetError("gone")

    with pytest.raises(ConnectionResetError):
        asyncio.run(SendWatch(TIMEOUT_S, FakeClock()).run(writer()))


def test_run_until_returns_the_result_or_expired_and_cancels_the_work() -> None:
    from realtime.session.send_watch import EXPIRED, run_until

    async def scenario() -> None:
        async def quick() -> int:
            return 7

        assert await run_until(quick(), every_s=0.01, expired=lambda: True) == 7
        cancelled = asyncio.Event()

        async def forever() -> None:
            try:
                await asyncio.sleep(60)
            finally:
                cancelled.set()

        checks = iter([False, False, True])
        assert await run_until(forever(), every_s=0.01, expired=lambda: next(checks)) is EXPIRED
        assert cancelled.is_set(), "the work is cancelled and awaited before run_until returns"

    asyncio.run(scenario())


def test_work_that_fails_as_its_watcher_is_cancelled_leaves_no_unretrieved_exception() -> None:
    """A peer that resets the connection fails the writer's send in the same step that the session
    cancels the watcher: the writer's exception must be collected, not reported by asyncio as
    "Task exception was never retrieved" (one log line per reset connection)."""
    import gc

    from realtime.session.send_watch import run_until

    unretrieved: list[dict] = []

    async def scenario() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: unretrieved.append(context))
        fail = asyncio.Event()

        async def writer() -> None:
            await fail.wait()
            raise ConnectionResetError("peer reset")

        watcher = asyncio.ensure_future(run_until(writer(), every_s=10.0, expired=lambda: False))
        await asyncio.sleep(0)  # the watcher now waits on the writer
        fail.set()
        await asyncio.sleep(0)  # the writer runs and fails; the watcher's wake-up is only scheduled
        watcher.cancel()  # ... and the session cancels it in this same step
        with pytest.raises(asyncio.CancelledError):
            await watcher
        gc.collect()
        await asyncio.sleep(0)

    asyncio.run(scenario())
    gc.collect()
    assert not [c for c in unretrieved if "never retrieved" in c.get("message", "")], unretrieved
