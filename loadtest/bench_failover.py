"""Failover gap: a primary engine killed mid-sentence → the fallback's first audio at the listener.

    python -m loadtest.bench_failover [--trials 20] [--fault fail,stall] [--fallback piper] [--stall-ms 1500]

Runs the gateway in this process (uvicorn in a thread) with a fault-injecting primary
(`faulty_engine.FaultyEngine`: tone audio at half level, 1.5× real time, like a GPU model
with little to spare) whose fallback is `--fallback` (Piper by default: the fast CPU voice).
Each trial opens a realtime session on the primary, sends two clauses, and 0.4–1.6 s after
its first audio (mid-sentence) makes the primary fail (`fail`: its next chunk raises, as a
dead upstream would) or hang (`stall`: no more audio). Reported per fault, p50/p95/max:

- `first_fallback_ms`: the kill → the first frame at least as loud as only the fallback
  makes (the primary's audio never is);
- `silence_ms`: what a listener playing every frame as it comes hears as silence after the
  kill (a playout simulation: the audio sent ahead, up to `lead_ms`, bridges the gap first);
- `lost_text`: segments whose text was not all spoken (must be 0).

`--memory N`: also unload and reload the fallback engine N times through the admin API (after
one request warmed it), reading this process's RSS loaded, unloaded and reloaded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import numpy as np
import websockets

from realtime.app import create_app, gateway_server
from realtime.control.settings import load_settings
from realtime.engines.memory import rss_mb
from realtime.gateway import Gateway

from .common import percentile, run_client
from .faulty_engine import FaultyEngine

TEXT = (
    "The primary speaks first, a clause at a time, until it dies in the middle of a sentence; "
    "then the fallback takes over and finishes it."
)
PRIMARY_GAIN = 0.5
LOUD = int(0.3 * 0.75 * 32767)
"""A frame peaking above this came from the fallback: the primary's peak is 0.3 × `PRIMARY_GAIN`."""


@contextmanager
def serve(fallback: str, stall_ms: float) -> Iterator[tuple[str, Gateway, FaultyEngine]]:
    faulty = FaultyEngine(gain=PRIMARY_GAIN, speed=1.5, chunk_ms=40.0, ms_per_char=50.0, workers=2)
    settings = load_settings(
        engines=[fallback], failover={"fallbacks": {"faulty": [fallback]}, "stall_ms": stall_ms, "retry_after_s": 0.0},
        log_level="WARNING",
    )  # fmt: skip
    app = create_app(settings)
    gateway: Gateway = app.state.gateway
    gateway.engines.register("faulty", faulty)
    server = gateway_server(app, settings, host="127.0.0.1", port=0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    while not gateway.ready:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}", gateway, faulty
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def silence_after(arrivals: list[tuple[float, float]], after: float) -> float:
    """Seconds of silence after `after` for a listener who plays each frame (start, duration) as soon
    as it arrives, or right after the one before."""
    play_end, silent = None, 0.0
    for at, duration in arrivals:
        if play_end is not None and at > play_end and at > after:
            silent += at - max(play_end, after)
        play_end = max(play_end or at, at) + duration
    return silent


async def trial(
    url: str, gateway: Gateway, faulty: FaultyEngine, fault: str, rng: random.Random
) -> dict[str, Any]:
    faulty.recover()
    entry = gateway.engines.entry("faulty")
    assert entry is not None
    entry.health.reset()
    text = TEXT
    async with websockets.connect(f"{url}/v1/realtime?engine=faulty&voice=mid") as ws:
        created = json.loads(await ws.recv())
        frame_s = created["output"]["frame_ms"] / 1000.0
        await ws.send(json.dumps({"type": "text.append", "text": text}))
        await ws.send(json.dumps({"type": "text.done"}))
        frames: list[tuple[float, int]] = []
        segments: list[dict[str, Any]] = []
        kill_at: float | None = None
        wait_s = rng.uniform(0.4, 1.6)
        while True:
            timeout = None
            if frames and kill_at is None:
                timeout = max(0.0, frames[0][0] + wait_s - time.monotonic())
            try:
                message = await asyncio.wait_for(ws.recv(), timeout)
            except asyncio.TimeoutError:
                kill_at = time.monotonic()
                getattr(faulty, fault)()
                continue
            now = time.monotonic()
            if isinstance(message, bytes):
                frames.append((now, int(np.abs(np.frombuffer(message, "<i2")).max(initial=0))))
                continue
            event = json.loads(message)
            if event["type"] == "segment.started":
                segments.append(event)
            elif event["type"] == "error":
                raise RuntimeError(event)
            elif event["type"] == "context.done":
                break
    assert kill_at is not None, "the answer ended before the kill"
    loud = [at for at, peak in frames if at > kill_at and peak > LOUD]
    said = " ".join(s["text"] for s in segments)
    return {
        "fault": fault,
        "first_fallback_ms": (loud[0] - kill_at) * 1000.0 if loud else None,
        "silence_ms": silence_after([(at, frame_s) for at, _ in frames], kill_at) * 1000.0,
        "lost_text": int(said != text),
        "degraded_segments": sum(1 for s in segments if s["degraded"]),
    }


def memory_cycles(url: str, engine: str, cycles: int) -> list[dict[str, float]]:
    """RSS (MB) with `engine` loaded and warm, after its unload, after its reload; `cycles` times."""
    http = url.replace("ws://", "http://")

    def state() -> str:
        return str(httpx.get(f"{http}/v1/engines/{engine}").json()["state"])

    def until(wanted: str) -> None:
        while state() != wanted:
            time.sleep(0.05)

    body = {"model": engine, "voice": "alloy", "input": "A sentence of some length to warm the engine up.",
            "response_format": "pcm"}  # fmt: skip
    rows = []
    for _ in range(cycles):
        httpx.post(f"{http}/v1/audio/speech", json=body, timeout=60).raise_for_status()
        loaded = rss_mb() or 0.0
        httpx.post(f"{http}/v1/engines/{engine}/unload").raise_for_status()
        until("unloaded")
        unloaded = rss_mb() or 0.0
        httpx.post(f"{http}/v1/engines/{engine}/load").raise_for_status()
        until("ready")
        rows.append({"loaded_mb": round(loaded, 1), "unloaded_mb": round(unloaded, 1),
                     "reloaded_mb": round(rss_mb() or 0.0, 1)})  # fmt: skip
    return rows


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "trials": len(rows), "moved": sum(1 for r in rows if r["first_fallback_ms"] is not None),
        "lost_text": sum(r["lost_text"] for r in rows),
    }  # fmt: skip
    for key in ("first_fallback_ms", "silence_ms"):
        values = [r[key] for r in rows if r[key] is not None]
        out[key] = {"p50": round(percentile(values, 50), 1), "p95": round(percentile(values, 95), 1),
                    "max": round(max(values), 1) if values else None}  # fmt: skip
    return out


async def run(args: argparse.Namespace, url: str, gateway: Gateway, faulty: FaultyEngine) -> dict[str, Any]:
    rng = random.Random(args.seed)
    results: dict[str, Any] = {}
    for fault in args.fault.split(","):
        rows = [await trial(url, gateway, faulty, fault, rng) for _ in range(args.trials)]
        results[fault] = summarize(rows)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--fault", default="fail,stall")
    parser.add_argument("--fallback", default="piper")
    parser.add_argument("--stall-ms", type=float, default=1500.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--memory", type=int, default=0, help="unload/reload cycles of the fallback to measure"
    )
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    with serve(args.fallback, args.stall_ms) as (url, gateway, faulty):
        results = run_client(run(args, url, gateway, faulty)) if args.trials else {}
        if args.memory:
            results["memory"] = memory_cycles(url, args.fallback, args.memory)
    results = {"fallback": args.fallback, "stall_ms": args.stall_ms, **results}
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=2)


if __name__ == "__main__":
    main()
