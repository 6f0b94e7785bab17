"""The gateway's own time to first byte on `POST /v1/audio/speech`, two builds interleaved.

    python -m loadtest.bench_overhead --before PATH [--requests 400]

Both servers run the `tone` engine at 200× real time with no latency, so synthesis is nearly
free and what is measured is the gateway's path (HTTP, validation, scheduling, encoding). The
requests alternate between the build at PATH (e.g. `git worktree add /tmp/before HEAD~1`) and
this checkout, in alternating order, so machine drift hits both alike. The first 20 of each are
warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import httpx

from .common import ServerProcess, percentile

TONE = {"REALTIME_ENGINES": '["tone"]', "REALTIME_TONE__SPEED": "200", "REALTIME_TONE__LATENCY_MS": "0"}
BODY = {"model": "tts-1", "voice": "alloy", "input": "The quick brown fox jumps over the lazy dog.",
        "response_format": "pcm"}  # fmt: skip


def first_byte_ms(client: httpx.Client, url: str) -> float:
    started = time.perf_counter()
    with client.stream("POST", f"{url}/v1/audio/speech", json=BODY) as response:
        response.raise_for_status()
        next(response.iter_bytes())
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="a checkout of the build to compare with")
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"before": [], "after": []}
    with ServerProcess(env=TONE, checkout=args.before.resolve()) as before, ServerProcess(env=TONE) as after:
        urls = {"before": before.url, "after": after.url}
        with httpx.Client(timeout=30) as client:
            for i in range(args.requests):
                for name in ("before", "after") if i % 2 else ("after", "before"):
                    times[name].append(first_byte_ms(client, urls[name]))
    for name, samples in times.items():
        kept = samples[20:]
        print(f"{name}: first byte p50 {statistics.median(kept):.2f} ms, p90 {percentile(kept, 90):.2f} ms, "
              f"mean {statistics.mean(kept):.2f} ms ({len(kept)} requests)")  # fmt: skip


if __name__ == "__main__":
    main()
