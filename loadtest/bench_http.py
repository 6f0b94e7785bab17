"""The `http` engine's overhead: one upstream called directly and through a gateway, interleaved.

    python -m loadtest.bench_http [--requests 200] [--long-requests 10] [--streams 4] [--rounds 3]
                                  [--upstream-engine tone|piper] [--json PATH]

Two `realtime serve` processes: the upstream (the tone engine by default, at its default 50× real
time with 5 ms latency, so the upstream's own time is small and steady; `--upstream-engine piper`
for a real model), and a front gateway whose only engine is `http`, pointing at it. Each
measurement alternates between `POST {upstream}/v1/audio/speech` and the same request through the
front gateway (`model: http`), in alternating order, so machine drift hits both alike:

- time to first audio: the first non-empty read of a 120-character `pcm` request (the first 20
  pairs are warm-up); the overhead is the median of the paired differences;
- throughput, one stream: a 1,000-character request read to the end, audio seconds per wall second;
- throughput, concurrent: `--streams` such requests started together, total audio per wall second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from .common import BENCH_TEXT_120, ServerProcess, long_text, percentile, run_client

WARMUP = 20
RATE = 24000
UPSTREAMS = {
    "tone": {"REALTIME_ENGINES": '["tone"]', "REALTIME_TONE__WORKERS": "2"},
    "piper": {"REALTIME_ENGINES": '["piper"]'},
}
PATHS = ("direct", "http")


def body(text: str, model: str) -> dict[str, Any]:
    return {"model": model, "voice": "alloy", "input": text, "response_format": "pcm"}


def first_audio_ms(client: httpx.Client, url: str, model: str) -> float:
    started = time.perf_counter()
    with client.stream("POST", f"{url}/v1/audio/speech", json=body(BENCH_TEXT_120, model)) as response:
        response.raise_for_status()
        for data in response.iter_raw():
            if data:
                return (time.perf_counter() - started) * 1000
    raise RuntimeError("no audio")


def whole(client: httpx.Client, url: str, model: str, text: str) -> tuple[float, float]:
    """(audio seconds, wall seconds) of one request read to the end."""
    started = time.perf_counter()
    response = client.post(f"{url}/v1/audio/speech", json=body(text, model))
    response.raise_for_status()
    return len(response.content) / 2 / RATE, time.perf_counter() - started


async def concurrent(url: str, model: str, text: str, streams: int) -> tuple[float, float]:
    """(total audio seconds, wall seconds) of `streams` requests started together."""

    async def one(client: httpx.AsyncClient) -> int:
        response = await client.post(f"{url}/v1/audio/speech", json=body(text, model))
        response.raise_for_status()
        return len(response.content)

    async with httpx.AsyncClient(timeout=300, limits=httpx.Limits(max_connections=streams)) as client:
        started = time.perf_counter()
        sizes = await asyncio.gather(*(one(client) for _ in range(streams)))
        return sum(sizes) / 2 / RATE, time.perf_counter() - started


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": statistics.median(values), "p95": percentile(values, 95), "mean": statistics.mean(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="time-to-first-audio pairs (after warm-up)")
    parser.add_argument("--long-requests", type=int, default=10, help="1,000-character pairs, one at a time")
    parser.add_argument("--streams", type=int, default=4, help="concurrent 1,000-character requests")
    parser.add_argument("--rounds", type=int, default=3, help="concurrent rounds per path")
    parser.add_argument("--upstream-engine", choices=sorted(UPSTREAMS), default="tone")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()
    long = long_text(1000)
    results: dict[str, Any] = {"upstream_engine": args.upstream_engine}
    with ServerProcess(env=UPSTREAMS[args.upstream_engine]) as upstream:
        front_env = {
            "REALTIME_ENGINES": '["http"]',
            "REALTIME_HTTP__URLS": json.dumps([f"{upstream.url}/v1"]),
        }
        with ServerProcess(env=front_env) as front:
            targets = {"direct": (upstream.url, "tts-1"), "http": (front.url, "http")}

            def order(i: int) -> tuple[str, ...]:
                return PATHS if i % 2 else PATHS[::-1]

            ttfa: dict[str, list[float]] = {p: [] for p in PATHS}
            with httpx.Client(timeout=60) as client:
                for i in range(WARMUP + args.requests):
                    for path in order(i):
                        ttfa[path].append(first_audio_ms(client, *targets[path]))
                pairs = [h - d for d, h in zip(ttfa["direct"][WARMUP:], ttfa["http"][WARMUP:], strict=True)]
                results["ttfa_ms"] = {p: summary(v[WARMUP:]) for p, v in ttfa.items()}
                results["ttfa_overhead_ms"] = summary(pairs)

                speed: dict[str, list[float]] = {p: [] for p in PATHS}
                audio: dict[str, float] = {}
                for i in range(args.long_requests):
                    for path in order(i):
                        audio_s, wall_s = whole(client, *targets[path], long)
                        speed[path].append(audio_s / wall_s)
                        audio[path] = audio_s
                results["one_stream_x_realtime"] = {p: summary(v) for p, v in speed.items()}
                results["one_stream_audio_s"] = audio

            together: dict[str, list[float]] = {p: [] for p in PATHS}
            for i in range(args.rounds):
                for path in order(i):
                    audio_s, wall_s = run_client(concurrent(*targets[path], long, args.streams))
                    together[path].append(audio_s / wall_s)
            results[f"{args.streams}_streams_x_realtime"] = {p: summary(v) for p, v in together.items()}

    overhead = results["ttfa_overhead_ms"]
    for path in PATHS:
        t = results["ttfa_ms"][path]
        print(f"{path:6} first audio p50 {t['p50']:.2f} ms, p95 {t['p95']:.2f} ms; one stream "
              f"{results['one_stream_x_realtime'][path]['p50']:.1f}x real time; {args.streams} streams "
              f"{results[f'{args.streams}_streams_x_realtime'][path]['p50']:.1f}x")  # fmt: skip
    print(f"http engine overhead on first audio: p50 {overhead['p50']:+.2f} ms, p95 {overhead['p95']:+.2f} ms "
          f"({args.requests} pairs)")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
