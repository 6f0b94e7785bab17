"""Piper engine capacity by worker/thread layout, or by chunk length, through the engine's own worker pool.

    python -m loadtest.bench_engine [--jobs 16] [--layouts 1x1,1x2,2x1,2x2,4x1]
    python -m loadtest.bench_engine --lengths 5,10,20,40,80,160 [--rounds 4]

A layout WxT is W worker threads with T ONNX Runtime intra-op threads each.
Reports single-job latency and the aggregate throughput (audio seconds per
wall second) with `--jobs` concurrent 200-character jobs.

`--lengths` measures what the scheduler's chunk size costs: audio per CPU second of
the worker threads for chunks cut at a word boundary (as the planner cuts under
load), and the silence Piper puts around each chunk, which the listener hears as a
pause at every join. Lengths are interleaved round by round, so the VM's drift in
speed spreads evenly over them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import numpy as np

from realtime.engines.base import SynthesisJob
from realtime.engines.piper.engine import PiperEngine
from realtime.engines.piper.settings import PiperSettings

from .common import PARAGRAPH, long_text, percentile

TEXT = long_text(200)
SILENCE_LEVEL = 0.02
"""Samples below this (about -34 dBFS) count as silence around a chunk."""


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


def word_chunks(chars: int, count: int) -> list[str]:
    """`count` different texts of about `chars` characters, each cut after a whole word, no punctuation."""
    words = PARAGRAPH.replace(".", "").replace(",", "").split()
    chunks = []
    for start in range(count):
        text, i = "", start
        while len(text) < chars:
            text = f"{text} {words[i % len(words)]}".strip()
            i += 1
        chunks.append(text)
    return chunks


def edge_silence_s(audio: np.ndarray, sample_rate: int) -> float:
    """Leading plus trailing silence of one chunk's audio."""
    loud = np.flatnonzero(np.abs(audio) > SILENCE_LEVEL)
    if loud.size == 0:
        return audio.size / sample_rate
    return (loud[0] + audio.size - 1 - loud[-1]) / sample_rate


async def chunk_costs(lengths: list[int], rounds: int, jobs: int) -> dict[int, dict[str, float]]:
    """Per length: audio seconds per worker CPU second, and the mean silence around a chunk."""
    engine = PiperEngine(PiperSettings())
    await engine.start()
    voice, rate = engine.info.default_voice, engine.info.sample_rate
    totals = {n: {"audio_s": 0.0, "cpu_s": 0.0, "silence_s": 0.0, "chunks": 0} for n in lengths}

    async def one(text: str) -> np.ndarray:
        parts = [chunk async for chunk in engine.synthesize(SynthesisJob(text, voice))]
        return np.concatenate(parts)

    for r in range(rounds):
        for n in lengths[r % len(lengths) :] + lengths[: r % len(lengths)]:
            cpu_before = engine.stats.cpu_seconds
            outputs = await asyncio.gather(*(one(t) for t in word_chunks(n, jobs)))
            t = totals[n]
            t["cpu_s"] += engine.stats.cpu_seconds - cpu_before
            t["audio_s"] += sum(o.size for o in outputs) / rate
            t["silence_s"] += sum(edge_silence_s(o, rate) for o in outputs)
            t["chunks"] += len(outputs)
    await engine.stop()
    return {
        n: {
            "audio_per_cpu_s": t["audio_s"] / t["cpu_s"],
            "audio_per_chunk_s": t["audio_s"] / t["chunks"],
            "silence_per_chunk_s": t["silence_s"] / t["chunks"],
        }
        for n, t in totals.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=16)
    parser.add_argument("--layouts", default="1x1,1x2,2x1,2x2,4x1,2x2n")
    # A trailing "n" turns ONNX Runtime's spin-waiting off for that layout.
    parser.add_argument("--lengths", help="comma-separated chunk lengths: cost by chunk length instead")
    parser.add_argument("--rounds", type=int, default=4, help="with --lengths: interleaved rounds")
    args = parser.parse_args()
    if args.lengths:
        lengths = [int(n) for n in args.lengths.split(",")]
        costs = asyncio.run(chunk_costs(lengths, args.rounds, args.jobs))
        print(f"{os.cpu_count()} cores; {args.rounds} rounds of {args.jobs} concurrent chunks per length")
        print(
            "| chunk | audio per chunk | audio per CPU second | silence around a chunk |\n|---|---|---|---|"
        )
        for n, c in costs.items():
            print(f"| {n} chars | {c['audio_per_chunk_s']:.2f} s | {c['audio_per_cpu_s']:.1f} s "
                  f"| {c['silence_per_chunk_s'] * 1e3:.0f} ms |")  # fmt: skip
        return
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
