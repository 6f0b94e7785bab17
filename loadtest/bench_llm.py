"""The Orpheus LLM: N sequences in one llama.cpp batch vs. one at a time.

    python -m loadtest.bench_llm MODEL.gguf --threads 1 [--tokens 35 --repeat 1]

Serves N seeded requests through one `LlamaCppGenerator` (the in-process
generator, `realtime/engines/orpheus/llm_local.py`) all together and then one
after another, and logs total tokens/s for both. Any GGUF works; the random
ones from `tests/gguf_models.py` show the effect without real weights (results
in docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from realtime.engines.orpheus import codes
from realtime.engines.orpheus.llm import GenerationRequest
from realtime.engines.orpheus.llm_local import LlamaCppGenerator

logger = logging.getLogger(__name__)


async def _bench(
    model: Path, sequences: list[int], tokens: int, threads: int | None, gpu_layers: int, repeat: int
) -> None:
    """Total tokens/s for N seeded requests served together in one batch vs. one after another.

    Best of `repeat` runs each, in wall time and per CPU-second of this process: on a shared
    machine the best run is the one least disturbed by other work.
    """
    generator = LlamaCppGenerator(
        model,
        max_sequences=max(sequences),
        n_ctx=max(sequences) * (tokens + 64),
        n_threads=threads,
        n_gpu_layers=gpu_layers,
    )
    await generator.start()
    text = codes.format_prompt("Hello there, how are you?", "tara")

    async def one(seed: int) -> int:
        request = GenerationRequest(prompt=text, max_tokens=tokens, seed=seed)
        return len([n async for n in generator.generate(request)])

    async def together(n: int) -> int:
        return sum(await asyncio.gather(*(one(i) for i in range(n))))

    async def one_by_one(n: int) -> int:
        return sum([await one(i) for i in range(n)])

    async def best(run: Any, n: int) -> tuple[float, float]:
        wall_rate = cpu_rate = 0.0
        for _ in range(repeat):
            wall, cpu = time.perf_counter(), time.process_time()
            count = await run(n)
            wall_rate = max(wall_rate, count / (time.perf_counter() - wall))
            cpu_rate = max(cpu_rate, count / max(time.process_time() - cpu, 1e-9))
        return wall_rate, cpu_rate

    try:
        await one(0)  # warm caches and thread pools
        for n in sequences:
            steps = generator.stats.decode_steps
            batched = await best(together, n)
            steps = (generator.stats.decode_steps - steps) // repeat
            serial = await best(one_by_one, n)
            logger.info(
                "N=%d: batched %7.1f tok/s (%7.1f per CPU-s, %d steps), one at a time %7.1f tok/s (%7.1f per CPU-s)",
                n,
                *batched,
                steps,
                *serial,
            )
    finally:
        await generator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark batched vs. sequential Orpheus token generation.")
    parser.add_argument("model", type=Path)
    parser.add_argument("--sequences", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--tokens", type=int, default=210)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--gpu-layers", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    asyncio.run(_bench(args.model, args.sequences, args.tokens, args.threads, args.gpu_layers, args.repeat))


if __name__ == "__main__":
    main()
