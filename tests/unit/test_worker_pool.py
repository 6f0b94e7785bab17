"""The engine worker pool: deadline order, streaming, cancellation, accounting."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from realtime.engines.base import EngineStats, SynthesisJob
from realtime.engines.worker_pool import WorkerPool


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def wait_until(predicate, timeout_s: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout_s / 0.001)):
        if predicate():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition not reached")


class GatedPool:
    """One worker, held by the job "blocker" until `gate` is set; records the order jobs ran in."""

    def __init__(self) -> None:
        self.stats = EngineStats()
        self.pool = WorkerPool(1, name="t", stats=self.stats, sample_rate=1000)
        self.order: list[str] = []
        self.gate = threading.Event()

    def _work(self, job: SynthesisJob, emit) -> None:  # type: ignore[no-untyped-def]
        if job.text == "blocker":
            self.gate.wait(5)
        self.order.append(job.text)
        emit(np.zeros(10, np.float32))

    async def consume(self, job: SynthesisJob) -> None:
        async for _ in self.pool.stream(job, self._work):
            pass


def test_jobs_are_admitted_earliest_deadline_first() -> None:
    async def main() -> list[str]:
        gated = GatedPool()
        blocker = asyncio.create_task(gated.consume(SynthesisJob("blocker", "v")))
        await wait_until(lambda: gated.pool.gate.busy == 1)
        jobs = [SynthesisJob(t, "v", deadline=d) for t, d in [("c", 3.0), ("a", 1.0), ("b", 2.0)]]
        waiting = [asyncio.create_task(gated.consume(job)) for job in jobs]
        await wait_until(lambda: gated.pool.gate.queue_depth == 3)
        gated.gate.set()
        await asyncio.gather(blocker, *waiting)
        await gated.pool.close()
        assert gated.stats.jobs_completed == 4 and gated.stats.audio_seconds == pytest.approx(0.04)
        return gated.order

    assert run(main()) == ["blocker", "a", "b", "c"]


def test_a_deadline_moved_while_waiting_decides_the_order() -> None:
    """Sessions move their waiting jobs' deadlines as they learn more; the pool reads them late."""

    async def main() -> list[str]:
        gated = GatedPool()
        blocker = asyncio.create_task(gated.consume(SynthesisJob("blocker", "v")))
        await wait_until(lambda: gated.pool.gate.busy == 1)
        a, b = SynthesisJob("a", "v", deadline=1.0), SynthesisJob("b", "v", deadline=2.0)
        waiting = [asyncio.create_task(gated.consume(job)) for job in (a, b)]
        await wait_until(lambda: gated.pool.gate.queue_depth == 2)
        b.deadline = 0.5  # b's session ran dry sooner than predicted
        gated.gate.set()
        await asyncio.gather(blocker, *waiting)
        await gated.pool.close()
        return gated.order

    assert run(main()) == ["blocker", "b", "a"]


def test_abandoned_stream_cancels_the_job_and_frees_the_slot() -> None:
    async def main() -> None:
        stats = EngineStats()
        pool = WorkerPool(1, name="t", stats=stats, sample_rate=1000)
        emitted = 0

        def work(job: SynthesisJob, emit) -> None:  # type: ignore[no-untyped-def]
            nonlocal emitted
            for _ in range(1000):
                if job.cancel.cancelled:
                    return
                emitted += 1
                emit(np.zeros(10, np.float32))
                time.sleep(0.002)

        stream = pool.stream(SynthesisJob("x", "v"), work)
        await stream.__anext__()
        await stream.aclose()
        for _ in range(200):
            if stats.jobs_cancelled:
                break
            await asyncio.sleep(0.01)
        assert stats.jobs_cancelled == 1 and emitted < 1000
        assert pool.gate.busy == 0
        # The slot is usable again.
        chunks = [
            c async for c in pool.stream(SynthesisJob("y", "v"), lambda j, e: e(np.ones(3, np.float32)))
        ]
        assert len(chunks) == 1
        await pool.close()

    run(main())


def test_waiter_cancelled_in_the_queue_is_removed() -> None:
    async def main() -> None:
        stats = EngineStats()
        pool = WorkerPool(1, name="t", stats=stats, sample_rate=1000)
        gate = threading.Event()
        first = pool.stream(SynthesisJob("a", "v"), lambda j, e: (gate.wait(5), e(np.ones(1, np.float32))))
        task1 = asyncio.create_task(first.__anext__())
        await asyncio.sleep(0.02)

        async def second() -> None:
            async for _ in pool.stream(SynthesisJob("b", "v"), lambda j, e: e(np.ones(1, np.float32))):
                pass

        task2 = asyncio.create_task(second())
        await asyncio.sleep(0.02)
        assert pool.gate.queue_depth == 1
        task2.cancel()
        await asyncio.sleep(0)
        assert pool.gate.queue_depth == 0
        gate.set()
        await task1
        await first.aclose()
        await pool.close()
        assert stats.jobs_started == 1

    run(main())


def test_engine_exception_reaches_the_consumer() -> None:
    async def main() -> None:
        stats = EngineStats()
        pool = WorkerPool(1, name="t", stats=stats, sample_rate=1000)

        def work(job: SynthesisJob, emit) -> None:  # type: ignore[no-untyped-def]
            raise RuntimeError("model exploded")

        with pytest.raises(RuntimeError, match="model exploded"):
            async for _ in pool.stream(SynthesisJob("a", "v"), work):
                pass
        await pool.close()
        assert stats.jobs_failed == 1 and pool.gate.busy == 0

    run(main())


def test_workers_run_below_the_event_loops_priority() -> None:
    import os

    async def main() -> tuple[int, int]:
        pool = WorkerPool(1, name="t", stats=EngineStats(), sample_rate=1000)
        worker = await pool.run_blocking(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        await pool.close()
        return worker, os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    worker, loop = run(main())
    assert worker > loop, "inference must never starve the loop that paces audio"
