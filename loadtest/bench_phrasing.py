"""Phrasing benchmark (issue 16): mid-phrase cuts beside time to first audio and underruns.

    python -m loadtest.bench_phrasing [--levels 1,8,16] [--duration 30] [--runs 2]
                                      [--tone-sessions 20] [--json out.json]

Native WebSocket sessions stream the built-in answers as LLM-like tokens at 30 tokens/s (±20 %
jitter, lead 300 ms), as `bench_realtime` does:
1. against `realtime serve` with Piper, at each of `--levels` sessions started together;
2. against the `tone` engine with Piper's timing and an exactly known capacity (2 workers × 12.5 =
   25× real time, as `bench_scheduler`), at `--tone-sessions` sessions (20 = 80 % of capacity).
For each: the share of segments that end mid-phrase (`loadtest.phrasing`: ends in a letter or digit,
not the context's last) with examples, TTFA p50/p95 after the first clause, and underruns.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path
from typing import Any

from .bench_scheduler import tone_env
from .common import ServerProcess, percentile, run_client
from .phrasing import PhrasingStats
from .sessions import WsLoadResult, run_ws_load


def run_level(url: str, sessions: int, args: argparse.Namespace, **options: Any) -> dict[str, Any]:
    loads: list[WsLoadResult] = [
        run_client(
            run_ws_load(
                url, sessions=sessions, duration_s=args.duration, tokens_per_second=30.0, seed=run, **options
            )
        )  # fmt: skip
        for run in range(args.runs)
    ]
    phrasing = PhrasingStats.of(texts for load in loads for texts in load.ended_segment_texts())
    aggs = [load.aggregate().summary() for load in loads]
    ttfa = [v for load in loads for row in load.rows() for v in row.ttfa_ms]
    row = {
        "sessions": sessions, "runs": args.runs, **phrasing.summary(),
        "ttfa_p50_ms": round(percentile(ttfa, 50), 1), "ttfa_p95_ms": round(percentile(ttfa, 95), 1),
        "underruns_per_run": [a["underruns"] for a in aggs], "errors": sum(a["errors"] for a in aggs),
    }  # fmt: skip
    print(f"{sessions} sessions: mid-phrase {phrasing.mid_phrase}/{phrasing.segments} ({phrasing.share:.1%}), "
          f"TTFA p50 {row['ttfa_p50_ms']} p95 {row['ttfa_p95_ms']} ms, underruns {row['underruns_per_run']}, "
          f"e.g. {phrasing.examples[:3]}", flush=True)  # fmt: skip
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--levels", default="1,8,16")
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--tone-sessions", type=int, default=20)
    parser.add_argument("--checkout", type=Path, help="measure the gateway of this source tree instead")
    parser.add_argument("--json")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}"
    }
    with ServerProcess(checkout=args.checkout) as server:
        ws = server.url.replace("http", "ws", 1)
        results["piper"] = [run_level(ws, int(n), args) for n in args.levels.split(",")]
    if args.tone_sessions:
        print("tone engine, 25x real time:", flush=True)
        with ServerProcess(env=tone_env(2, 12.5), checkout=args.checkout) as server:
            ws = server.url.replace("http", "ws", 1)
            results["tone_25x"] = run_level(ws, args.tone_sessions, args, engine="tone")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
