"""Phrasing benchmark (issue 16): mid-phrase cuts beside time to first audio and underruns.

    python -m loadtest.bench_phrasing [--levels 1,8,16] [--duration 30] [--runs 2]
                                      [--transports websocket,rest,twilio] [--tone-sessions 20]
                                      [--env KEY=VALUE ...] [--checkout DIR] [--json out.json]

Each transport as its users drive it, at each of `--levels` clients started together:
- `websocket`: native sessions stream the built-in answers as LLM-like tokens at 30 tokens/s (±20 %
  jitter, lead 300 ms), as `bench_realtime` does; mid-phrase examples come from `segment.started`;
- `rest`: OpenAI-style `POST /v1/audio/speech` loops, 400 characters of the answers each;
- `twilio`: emulated Media Streams calls, one answer per turn through the session API.
against `realtime serve` with Piper; then native sessions on the `tone` engine with Piper's timing and
an exactly known capacity (2 workers × 12.5 = 25× real time, as `bench_scheduler`) at
`--tone-sessions` sessions (20 = 80 % of capacity). Segments, mid-phrase cuts (a segment that ends in
a letter or digit and is not its context's last) and the silence added to stretched pauses are read
from the server's own counters (`realtime_segments`, `realtime_mid_phrase_cuts`,
`realtime_pause_stretch_seconds`, per transport), so every transport is measured the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from .bench_scheduler import tone_env
from .common import ServerProcess, percentile, run_client
from .phrasing import PhrasingStats
from .rest_load import run_rest_load
from .sessions import run_ws_load
from .twilio_load import run_twilio_load

COUNTERS = {
    "realtime_segments_total": "segments",
    "realtime_mid_phrase_cuts_total": "mid_phrase",
    "realtime_pause_stretch_seconds_total": "pause_stretch_s",
}


def phrasing_counters(base_url: str) -> dict[str, dict[str, float]]:
    """The server's phrasing counters by transport."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    out: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in COUNTERS:
                row = out.setdefault(sample.labels["transport"], {})
                row[COUNTERS[sample.name]] = sample.value
    return out


def counted(base_url: str, transport: str, run: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
    """Run one load; returns its result and the growth of `transport`'s phrasing counters."""
    before = phrasing_counters(base_url).get(transport, {})
    result = run()
    after = phrasing_counters(base_url).get(transport, {})
    return result, {k: after.get(k, 0.0) - before.get(k, 0.0) for k in COUNTERS.values()}


def _load(transport: str, url: str, clients: int, args: argparse.Namespace, seed: int, **options: Any) -> Any:
    ws = url.replace("http", "ws", 1)
    if transport == "websocket":
        return run_client(run_ws_load(ws, sessions=clients, duration_s=args.duration, tokens_per_second=30.0,
                                      seed=seed, **options))  # fmt: skip
    if transport == "rest":
        return run_client(run_rest_load(url, clients=clients, duration_s=args.duration, **options))
    if transport == "twilio":
        return run_client(run_twilio_load(ws, calls=clients, duration_s=args.duration, **options))
    raise ValueError(f"unknown transport {transport!r}")


def run_level(
    url: str, transport: str, clients: int, args: argparse.Namespace, **options: Any
) -> dict[str, Any]:
    loads, totals = [], dict.fromkeys(COUNTERS.values(), 0.0)
    for run in range(args.runs):
        load, grown = counted(
            url, transport, lambda run=run: _load(transport, url, clients, args, run, **options)
        )
        loads.append(load)
        totals = {k: totals[k] + grown[k] for k in totals}
    aggs = [load.aggregate().summary() for load in loads]
    ttfa = [v for load in loads for row in load.rows() for v in row.ttfa_ms]
    segments, mid = int(totals["segments"]), int(totals["mid_phrase"])
    examples, seen = [], ""
    if transport == "websocket":  # the client's own count too: it needs no counters (earlier builds)
        stats = PhrasingStats.of(texts for load in loads for texts in load.ended_segment_texts())
        examples, seen = stats.examples, f" (client saw {stats.mid_phrase}/{stats.segments})"
    row = {
        "transport": transport, "clients": clients, "runs": args.runs, "segments": segments,
        "mid_phrase": mid, "mid_phrase_share": round(mid / segments, 4) if segments else 0.0,
        "pause_stretch_s": round(totals["pause_stretch_s"], 2), "examples": examples,
        "ttfa_p50_ms": round(percentile(ttfa, 50), 1), "ttfa_p95_ms": round(percentile(ttfa, 95), 1),
        "underruns_per_run": [a["underruns"] for a in aggs], "errors": sum(a["errors"] for a in aggs),
    }  # fmt: skip
    print(f"{transport} x{clients}: mid-phrase {mid}/{segments} ({row['mid_phrase_share']:.1%}){seen}, "
          f"pauses stretched by {row['pause_stretch_s']} s, TTFA p50 {row['ttfa_p50_ms']} "
          f"p95 {row['ttfa_p95_ms']} ms, underruns {row['underruns_per_run']}, errors {row['errors']}, "
          f"e.g. {examples[:3]}", flush=True)  # fmt: skip
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--levels", default="1,8,16")
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--transports", default="websocket,rest,twilio")
    parser.add_argument("--tone-sessions", type=int, default=20)
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server (repeatable)")
    parser.add_argument("--checkout", type=Path, help="measure the gateway of this source tree instead")
    parser.add_argument("--json")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    results: dict[str, Any] = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}",
        "env": env,
    }
    with ServerProcess(env=env, checkout=args.checkout) as server:
        results["piper"] = [
            run_level(server.url, transport, int(n), args)
            for transport in args.transports.split(",")
            for n in args.levels.split(",")
        ]
    if args.tone_sessions:
        with ServerProcess(env={**tone_env(2, 12.5), **env}, checkout=args.checkout) as server:
            print("tone engine, 25x real time:", flush=True)
            results["tone_25x"] = run_level(server.url, "websocket", args.tone_sessions, args, engine="tone")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
