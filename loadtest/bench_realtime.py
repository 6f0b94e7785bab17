"""Realtime benchmark (issue 3): TTFA for an LLM token stream, session capacity vs. engine
capacity, barge-in latency and Twilio pacing, all in one run on one machine.

    python -m loadtest.bench_realtime [--duration 30] [--levels 12,16,18,20] [--runs 2] [--ramp-up 2]
                                      [--loadgen-cores 0] [--json out.json]

0. Cores: by default the load generator shares every CPU with the server (the server then pays for
   the generator's CPU, about 5 ms per second of audio). `--loadgen-cores K` gives the generator K
   CPUs of its own and the server the rest. Either way the server runs one Piper worker per CPU it
   may use, and the engine's capacity is measured on those CPUs only.
1. Engine capacity: the Piper engine called in-process (16 concurrent jobs, no server running) on
   the server's CPUs, before the sessions and again after them; utilisation is against the faster
   measurement.
2. `realtime serve` (Piper) in a child process; N native WebSocket sessions stream LLM-like
   tokens at 30 tokens/s (lead 300 ms) for `--duration` s, all started at once and then started
   evenly over `--ramp-up` s, `--runs` times each; underruns counted at the client (playback starts
   at the first frame). Utilisation = the audio all sessions received per second while all of them
   ran (after the ramp, before the drain) / engine capacity. Also against the capacity measured
   inside each run: the server's audio per CPU second of its inference threads × cores (from
   /metrics), which follows the VM's speed while the sessions run.
3. Barge-in latency (speech onset → last frame of the interrupted context), 20 trials.
4. Twilio: 4 emulated calls; outbound frame pacing jitter.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
from pathlib import Path

from .bench_bargein import caller_speech, trial
from .bench_engine import measure
from .common import (
    CoreSplit,
    ServerProcess,
    capacity_between,
    engine_counters,
    percentile,
    pinned,
    run_client,
)
from .report import Row
from .sessions import run_ws_load
from .twilio_load import run_twilio_load


def engine_capacity(cpus: frozenset[int]) -> float:
    """Audio seconds per second of the Piper engine called in-process, one worker per CPU in `cpus`."""
    with pinned(cpus):
        return float(asyncio.run(measure(len(cpus), 1, 16, True))["throughput_x"])


def _listed(values: list[float | None], fmt: str) -> str:
    return ", ".join("-" if v is None else fmt.format(v) for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--levels", default="12,16,18,20")
    parser.add_argument("--runs", type=int, default=2, help="runs per level: zero underruns must hold in all")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument(
        "--ramp-up", type=float, default=2.0, help="second sweep: starts spread over this long"
    )
    parser.add_argument(
        "--loadgen-cores",
        type=int,
        default=0,
        help="CPUs of its own for the load generator (default 0: it shares every CPU with the server)",
    )
    parser.add_argument("--json")
    parser.add_argument("--checkout", type=Path, help="measure the gateway of this source tree instead")
    args = parser.parse_args()
    split = CoreSplit.isolated(args.loadgen_cores)
    results: dict[str, object] = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}",
        "cpus": split.describe(),
    }
    cores = len(split.server)
    print(split.describe())
    capacity_before = engine_capacity(split.server)
    print(f"engine capacity (in-process, 16 jobs, {cores} workers): {capacity_before:.1f}x real time")
    env = {"REALTIME_PIPER__WORKERS": str(cores)}  # as many workers as the capacity measurement had
    with ServerProcess(env=env, cpus=split.server, checkout=args.checkout) as server, pinned(split.loadgen):
        ws = server.url.replace("http", "ws", 1)
        ttfa = run_client(run_ws_load(ws, sessions=1, duration_s=args.duration, tokens_per_second=30.0))
        results["ttfa_1_session"] = ttfa.aggregate().summary()
        sweep = []
        for ramp, n in ((r, int(x)) for r in (0.0, args.ramp_up) for x in args.levels.split(",")):
            runs, in_run = [], []
            for _ in range(args.runs):
                before = engine_counters(server.url, "piper")
                runs.append(
                    run_client(
                        run_ws_load(
                            ws, sessions=n, duration_s=args.duration, tokens_per_second=30.0, ramp_up_s=ramp
                        )
                    )
                )
                in_run.append(capacity_between(before, engine_counters(server.url, "piper"), cores))
            aggs = [load.aggregate() for load in runs]
            rates = [rate for load in runs if (rate := load.steady_audio_rate()) is not None]
            agg = Row.aggregate(aggs).summary()
            rate = sum(rates) / len(rates) if rates else float("nan")
            row = {
                "sessions": n,
                "ramp_up_s": ramp,
                "runs": args.runs,
                **agg,
                "underruns_per_run": [a.underruns for a in aggs],
                "steady_audio_rate_x": rate,
                "in_run_capacity_x": in_run,
                "in_run_utilisation": [
                    r / c
                    for load, c in zip(runs, in_run, strict=True)
                    if c and (r := load.steady_audio_rate()) is not None
                ],  # fmt: skip
            }
            sweep.append(row)
            print(f"{n} sessions (ramp-up {ramp:g} s, {args.runs} runs): underruns {row['underruns_per_run']}, "
                  f"TTFA p50 {agg['ttfa_p50_ms']} p95 {agg['ttfa_p95_ms']} ms, steady audio {rate:.1f}x real time, "
                  f"errors {agg['errors']}")  # fmt: skip
        results["sweep"] = sweep
        frames, onset = caller_speech()
        barge = [run_client(trial(ws, frames, onset, 60)) for _ in range(args.trials)]
        ok = [b["latency_ms"] for b in barge if "latency_ms" in b]
        results["barge_in"] = {"p50_ms": percentile(ok, 50), "p95_ms": percentile(ok, 95), "missed": len(barge) - len(ok),
                               "stale_frames": sum(b.get("stale_frames", 0) for b in barge)}  # fmt: skip
        twilio = run_client(run_twilio_load(ws, calls=4, duration_s=min(args.duration, 15.0)))
        results["twilio"] = twilio.aggregate().summary()
    # The VM's speed drifts: measure again with the server gone, and hold the sessions against the
    # faster of the two measurements (the conservative ratio).
    capacity_after = engine_capacity(split.server)
    capacity = max(capacity_before, capacity_after)
    results["engine_capacity_x"] = {"before": capacity_before, "after": capacity_after, "used": capacity}
    for row in sweep:
        row["utilisation"] = row["steady_audio_rate_x"] / capacity
        row["demand_utilisation"] = row["sessions"] / capacity  # as if no session ever paused between turns
    t, b, tw = results["ttfa_1_session"], results["barge_in"], results["twilio"]
    print(f"\nmachine: {results['machine']}; {split.describe()}; engine capacity {capacity_before:.1f}x real time before the "
          f"sessions, {capacity_after:.1f}x after; utilisation against {capacity:.1f}x")  # fmt: skip
    print(
        f"TTFA, 1 session at 30 tokens/s: p50 {t['ttfa_p50_ms']} ms, p95 {t['ttfa_p95_ms']} ms ({t['items']} contexts)"
    )  # type: ignore[index]
    print("\n| sessions | starts | underruns per run | late ms | TTFA p50 | TTFA p95 | steady audio | of capacity "
          "| capacity in the run | of it | N / capacity (upper bound) | errors |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in sweep:
        starts = f"over {r['ramp_up_s']:g} s" if r["ramp_up_s"] else "together"
        print(f"| {r['sessions']} | {starts} | {r['underruns_per_run']} | {r['late_ms']} | {r['ttfa_p50_ms']} ms "
              f"| {r['ttfa_p95_ms']} ms | {r['steady_audio_rate_x']:.1f}x | {r['utilisation']:.0%} "
              f"| {_listed(r['in_run_capacity_x'], '{:.1f}x')} | {_listed(r['in_run_utilisation'], '{:.0%}')} "
              f"| {r['demand_utilisation']:.0%} | {r['errors']} |")  # fmt: skip
    print(
        f"\nbarge-in (min_speech_ms 60): p50 {b['p50_ms']:.0f} ms, p95 {b['p95_ms']:.0f} ms, "  # type: ignore[index]
        f"missed {b['missed']}, stale frames {b['stale_frames']}"
    )  # type: ignore[index]
    print(
        f"Twilio pacing jitter: p50 {tw['jitter_p50_ms']} ms, p99 {tw['jitter_p99_ms']} ms, max {tw['jitter_max_ms']} ms; "  # type: ignore[index]
        f"TTFA p50 {tw['ttfa_p50_ms']} ms; errors {tw['errors']}"
    )  # type: ignore[index]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
