"""Observers: events in order at their own pace, given up on when they fall behind or fail."""

from __future__ import annotations

import asyncio

from realtime.session.observers import Observer


def test_events_arrive_in_order_and_drain_waits_for_them() -> None:
    async def scenario() -> None:
        got: list[int] = []

        async def send(event: dict) -> None:
            await asyncio.sleep(0.001)
            got.append(event["i"])

        observer = Observer(send, send_timeout_s=1.0)
        task = asyncio.create_task(observer.run())
        for i in range(20):
            observer.offer({"i": i})
        await asyncio.wait_for(observer.drain(), 2)
        assert got == list(range(20)) and observer.failure is None
        task.cancel()

    asyncio.run(scenario())


def test_an_observer_that_falls_behind_is_given_up_on() -> None:
    async def scenario() -> None:
        blocked = asyncio.Event()

        async def send(event: dict) -> None:
            await blocked.wait()  # never set: the socket stopped reading

        observer = Observer(send, send_timeout_s=60.0, max_pending=5)
        task = asyncio.create_task(observer.run())
        for i in range(7):
            observer.offer({"i": i})  # never blocks the caller
        assert "behind" in await asyncio.wait_for(task, 2)
        await asyncio.wait_for(observer.drain(), 1)  # a failed observer holds nobody up

    asyncio.run(scenario())


def test_a_stalled_or_failing_send_ends_the_observer_with_a_reason() -> None:
    async def scenario() -> None:
        async def stalls(event: dict) -> None:
            await asyncio.sleep(10)

        async def fails(event: dict) -> None:
            raise ConnectionResetError

        for send, words in ((stalls, "took over"), (fails, "send failed")):
            observer = Observer(send, send_timeout_s=0.05)
            task = asyncio.create_task(observer.run())
            observer.offer({"i": 1})
            assert words in await asyncio.wait_for(task, 2)

    asyncio.run(scenario())
