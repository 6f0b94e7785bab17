"""Piper engine capacity by worker/thread layout, through the engine's own worker pool.

    python -m loadtest.bench_engine [--jobs 16] [--layouts 1x1,1x2,2x1,2x2,4x1]

A layout WxT is W worker threads with T ONNX Runtime intra-op threads each.
Reports single-job latency and the aggregate throughput (audio seconds per
wall second) with `--jobs` concurrent 200-character jobs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from realtime.control.settings import PiperSettings
from realtime.engines.base import SynthesisJob
from realtime.engines.piper import PiperEngine

from .common import long_text, percentile

TEXT = long_text(200)


async def measure(workers: int, threads: int, jobs: int, spin: bool) -> dict[str, float]:
    engine = PiperEngine(PiperSettings(workers=workers, threads_per_worker=threads, spin_wait=spin))
    await engine.start()
    voice = engine.info.default_voice

    async def one() -> float:
        samples = 0
        async for chunk in engine.synthesize(SynthesisJob(TEXT, voice)):
            samples += chunk.size
        return samples / engine.info.sample_rate

    latencies = []
    for _ in range(3):
        start = time.perf_counter()
        await one()
        latencies.append(time.perf_counter() - start)
    start = time.perf_counter()
    audio = await asyncio.gather(*(one() for _ in range(jobs)))
    wall = time.perf_counter() - start
    await engine.stop()
    return {"single_job_s": percentile(latencies, 50), "throughput_x": sum(audio) / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=16)
    parser.add_argument("--layouts", default="1x1,1x2,2x1,2x2,4x1,2x2n")
    # A trailing "n" turns ONNX Runtime's spin-waiting off for that layout.
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; {args.jobs} concurrent jobs of {len(TEXT)} characters")
    print("| workers x threads | single job | throughput (audio s / wall s) |\n|---|---|---|")
    for layout in args.layouts.split(","):
        spin = not layout.endswith("n")
        w, t = (int(x) for x in layout.rstrip("n").split("x"))
        r = asyncio.run(measure(w, t, args.jobs, spin))
        print(
            f"| {w} x {t}{'' if spin else ', no spin'} | {r['single_job_s'] * 1e3:.0f} ms | {r['throughput_x']:.1f}x |"
        )


if __name__ == "__main__":
    main()
