"""Scheduler benchmark: realtime sessions against an engine whose capacity is exactly known.

    python -m loadtest.bench_scheduler [--workers 2] [--speed 12.5] [--levels 18,20,22,23,24]
                                       [--duration 30] [--ramp-up 2] [--json out.json]

`bench_realtime` measures Piper, whose capacity on a shared VM drifts by a tenth or more within one
30-second run, so there a dip in the machine's speed and a scheduling fault look alike. This
benchmark takes the machine out: the `tone` engine (load tests only, never a default) has Piper's
timing without its CPU use. Each job holds a worker for `audio / speed` seconds and hands over its
segment whole at the end, as Piper does with a sentence, so the engine's capacity is exactly
`workers × speed` real time. The sessions are those of `bench_realtime` (LLM-like tokens at
30 tokens/s, lead 300 ms, all started at once, then started over `--ramp-up` s); utilisation is the
audio all sessions received per second in the steady window over that capacity.
"""

from __future__ import annotations

import argparse
import json
import os
import platform

from .common import ServerProcess, run_client
from .sessions import run_ws_load

MS_PER_CHAR = 65.0
"""The tone engine's audio per character. Piper's embedded voice yields 0.29 s per segment plus 0.050 s
per character: 65 ms per character is its yield on a 20-character segment, lead-in and trailing silence
included, and a little more than on longer ones (a slightly heavier load than Piper's)."""


def tone_env(workers: int, speed: float) -> dict[str, str]:
    """Server settings for a tone engine with Piper's sample rate and whole-segment delivery."""
    return {
        "REALTIME_ENGINES": '["tone"]',
        "REALTIME_TONE__WORKERS": str(workers),
        "REALTIME_TONE__SPEED": str(speed),
        "REALTIME_TONE__SAMPLE_RATE": "22050",
        "REALTIME_TONE__MS_PER_CHAR": str(MS_PER_CHAR),
        "REALTIME_TONE__CHUNK_MS": "600000",  # one chunk per job: the segment arrives whole
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--speed", type=float, default=12.5, help="real time per worker")
    parser.add_argument("--levels", default="18,20,22,23,24")
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--ramp-up", type=float, default=2.0)
    parser.add_argument("--json")
    args = parser.parse_args()
    capacity = args.workers * args.speed
    rows = []
    with ServerProcess(env=tone_env(args.workers, args.speed)) as server:
        ws = server.url.replace("http", "ws", 1)
        for ramp in (0.0, args.ramp_up):
            for n in (int(x) for x in args.levels.split(",")):
                load = run_client(
                    run_ws_load(
                        ws,
                        sessions=n,
                        duration_s=args.duration,
                        tokens_per_second=30.0,
                        ramp_up_s=ramp,
                        engine="tone",
                    )  # fmt: skip
                )
                summary = load.aggregate().summary()
                rate = load.steady_audio_rate()
                row = {"sessions": n, "ramp_up_s": ramp, **summary, "steady_audio_rate_x": rate,
                       "utilisation": None if rate is None else rate / capacity}  # fmt: skip
                rows.append(row)
                print(f"{n} sessions (ramp-up {ramp:g} s): underruns {summary['underruns']}, "
                      f"steady audio {rate or float('nan'):.1f}x", flush=True)  # fmt: skip
    print(f"\nmachine: {platform.machine()} {os.cpu_count()} cores, {platform.python_version()}; "
          f"tone engine, {args.workers} workers x {args.speed:g}x = capacity {capacity:g}x real time")  # fmt: skip
    print(
        "\n| sessions | starts | underruns | late ms | TTFA p50 | TTFA p95 | steady audio | of capacity | errors |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        starts = f"over {r['ramp_up_s']:g} s" if r["ramp_up_s"] else "together"
        share = "-" if r["utilisation"] is None else f"{r['utilisation']:.0%}"
        print(f"| {r['sessions']} | {starts} | {r['underruns']} | {r['late_ms']} | {r['ttfa_p50_ms']} ms "
              f"| {r['ttfa_p95_ms']} ms | {r['steady_audio_rate_x'] or float('nan'):.1f}x | {share} "
              f"| {r['errors']} |")  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"capacity_x": capacity, "workers": args.workers, "speed": args.speed, "sweep": rows}, f,
                      indent=2)  # fmt: skip


if __name__ == "__main__":
    main()
