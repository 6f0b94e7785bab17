"""Deadline admission (`DeadlineGate`) on the event loop alone: no threads, a fake clock for idle time."""

from __future__ import annotations

import asyncio

import pytest

from realtime.engines.admission import DeadlineGate


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def admit_in_order(
    gate: DeadlineGate, jobs: dict[str, list[float]], order: list[str]
) -> list[asyncio.Task]:
    """One task per job: it takes a slot (deadline read from its list, so a test can move it), records
    its name, and holds the slot until cancelled."""

    async def job(name: str, deadline: list[float]) -> None:
        async with gate.slot(lambda: deadline[0]):
            order.append(name)
            await asyncio.Event().wait()

    tasks = [asyncio.create_task(job(name, d)) for name, d in jobs.items()]
    await settle()
    return tasks


def test_slots_go_at_once_then_earliest_deadline_first_ties_by_arrival() -> None:
    async def main() -> list[str]:
        gate, order = DeadlineGate(2), []
        jobs = {
            "first": [9.0],
            "second": [9.0],
            "late": [3.0],
            "early": [1.0],
            "tie-a": [2.0],
            "tie-b": [2.0],
        }
        tasks = await admit_in_order(gate, jobs, order)
        assert order == ["first", "second"] and gate.busy == 2 and gate.queue_depth == 4
        assert gate.load == 3.0
        by_name = dict(zip(jobs, tasks, strict=True))
        for finished in range(len(jobs)):
            by_name[order[finished]].cancel()  # a job ends: its slot goes to the most urgent waiter
            await settle()
        return order

    assert run(main()) == ["first", "second", "early", "tie-a", "tie-b", "late"]


def test_a_deadline_moved_while_waiting_decides_the_order() -> None:
    async def main() -> list[str]:
        gate, order = DeadlineGate(1), []
        a, b = [1.0], [2.0]
        tasks = await admit_in_order(gate, {"blocker": [0.0], "a": a, "b": b}, order)
        b[0] = 0.5  # b's session ran dry sooner than predicted
        tasks[0].cancel()
        await settle()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return order

    assert run(main())[:2] == ["blocker", "b"]


def test_a_waiter_cancelled_in_the_queue_leaves_it_and_slots_are_all_returned() -> None:
    async def main() -> None:
        gate, order = DeadlineGate(1), []
        tasks = await admit_in_order(gate, {"runs": [0.0], "gives-up": [1.0], "next": [2.0]}, order)
        assert gate.queue_depth == 2
        tasks[1].cancel()
        await settle()
        assert gate.queue_depth == 1
        tasks[0].cancel()
        await settle()
        assert order == ["runs", "next"]
        tasks[2].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert gate.busy == 0 and gate.queue_depth == 0 and gate.load == 0.0

    run(main())


def test_a_slot_handed_over_as_its_waiter_is_cancelled_passes_on() -> None:
    async def main() -> None:
        gate, order = DeadlineGate(1), []
        tasks = await admit_in_order(gate, {"runs": [0.0], "unlucky": [1.0], "next": [2.0]}, order)
        # The running job ends and hands its slot to "unlucky", which is cancelled before it resumes.
        tasks[0].cancel()
        await asyncio.sleep(0)  # "runs" exits its slot: "unlucky"'s future is resolved
        tasks[1].cancel()
        await settle()
        assert order == ["runs", "next"] and gate.busy == 1
        tasks[2].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert gate.busy == 0

    run(main())


def test_a_slot_is_released_when_its_body_fails() -> None:
    async def main() -> None:
        gate = DeadlineGate(1)
        with pytest.raises(RuntimeError):
            async with gate.slot(lambda: 0.0):
                raise RuntimeError("model exploded")
        assert gate.busy == 0
        async with gate.slot(lambda: 0.0):
            assert gate.busy == 1

    run(main())


def test_idle_time_counts_from_the_last_release_with_nothing_waiting() -> None:
    async def main() -> None:
        clock = FakeClock()
        gate = DeadlineGate(2, clock=clock)
        clock.now += 5
        assert gate.idle_for() == 5.0
        await gate.acquire(lambda: 0.0)
        await gate.acquire(lambda: 0.0)
        assert gate.idle_for() is None and gate.admitted == 2
        clock.now += 1
        gate.release()
        assert gate.idle_for() is None, "one slot still busy"
        gate.release()
        clock.now += 2
        assert gate.idle_for() == 2.0

    run(main())


def test_slots_must_be_positive() -> None:
    with pytest.raises(ValueError):
        DeadlineGate(0)
