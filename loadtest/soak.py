"""A long soak: the server's RSS while sessions speak, cancel, drop and reconnect, for 30 minutes.

    python -m loadtest.soak [--minutes 30] [--sessions 6] [--json FILE]

Runs `realtime serve` (Piper) in a child process. `--sessions` clients loop until the time is up,
each turn picking at random: speak an answer token by token to its end (`context.done`); cancel
it once audio flows (`context.cancel`); or drop the connection mid-answer (a reset, no close);
after a few turns a client closes its session and reconnects. One REST request in eight turns
goes to `POST /v1/audio/speech` instead. RSS is sampled every `--sample-s` seconds; the report
gives the curve, the first and last ten minutes' medians and the slope of a line fitted to the
second half (MB per hour), and counts turns and errors. Not part of CI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import websockets

from .bench_memory import status_mb
from .common import ServerProcess, run_client
from .tokens import DEFAULT_PARAGRAPHS, tokenize

OUTCOMES = ("spoken", "cancelled", "dropped", "rest")


class Soak:
    def __init__(self, url: str, minutes: float, seed: int) -> None:
        self.url = url
        self.ws_url = url.replace("http", "ws", 1) + "/v1/realtime"
        self.ends_at = time.monotonic() + minutes * 60
        self.rng = random.Random(seed)
        self.turns = dict.fromkeys(OUTCOMES, 0)
        self.errors: list[str] = []
        self.reconnects = 0

    def running(self) -> bool:
        return time.monotonic() < self.ends_at

    async def answer(self, ws: Any, context_id: str, outcome: str) -> None:
        text = self.rng.choice(DEFAULT_PARAGRAPHS)
        for token in tokenize(text, self.rng):
            await ws.send(json.dumps({"type": "text.append", "text": token, "context_id": context_id}))
            await asyncio.sleep(1 / 30)
        await ws.send(json.dumps({"type": "text.done", "context_id": context_id}))
        audio = 0
        while True:
            message = await asyncio.wait_for(ws.recv(), 60)
            if isinstance(message, bytes):
                audio += len(message)
                if outcome == "cancelled" and audio > 24000:
                    await ws.send(json.dumps({"type": "context.cancel", "context_id": context_id}))
                    outcome = "cancel sent"
                if outcome == "dropped" and audio > 24000:
                    ws.transport.abort()
                    return
                continue
            event = json.loads(message)
            if event["type"] == "error":
                self.errors.append(str(event))
            if (
                event["type"] in ("context.done", "speech.interrupted")
                and event.get("context_id") == context_id
            ):
                return

    async def client(self, n: int) -> None:
        while self.running():
            try:
                async with websockets.connect(self.ws_url, max_queue=None) as ws:
                    await ws.recv()  # session.created
                    for turn in range(self.rng.randrange(1, 6)):
                        if not self.running():
                            break
                        outcome = self.rng.choices(OUTCOMES, weights=(5, 2, 1, 1))[0]
                        if outcome == "rest":
                            await self.rest_turn()
                        else:
                            await self.answer(ws, f"c{n}-{turn}", outcome)
                        self.turns[outcome] += 1
                        if outcome == "dropped":
                            break
            except (websockets.ConnectionClosed, OSError, TimeoutError) as exc:
                if not isinstance(exc, websockets.ConnectionClosed) or "1000" not in str(exc):
                    self.errors.append(repr(exc)[:200])
            self.reconnects += 1

    async def rest_turn(self) -> None:
        body = {"model": "tts-1", "voice": "alloy", "input": self.rng.choice(DEFAULT_PARAGRAPHS)[:300],
                "response_format": self.rng.choice(["mp3", "pcm", "opus"])}  # fmt: skip
        async with httpx.AsyncClient(timeout=120) as client:
            response = await client.post(f"{self.url}/v1/audio/speech", json=body)
            if response.status_code != 200 or not response.content:
                self.errors.append(f"REST {response.status_code}")


async def sample(pid: int, soak: Soak, every_s: float, curve: list[tuple[float, float]]) -> None:
    started = time.monotonic()
    while soak.running():
        curve.append((round(time.monotonic() - started, 1), round(status_mb(pid), 1)))
        await asyncio.sleep(every_s)
    curve.append((round(time.monotonic() - started, 1), round(status_mb(pid), 1)))


def slope_mb_per_hour(points: list[tuple[float, float]]) -> float:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return statistics.linear_regression(xs, ys).slope * 3600 if len(points) > 2 else float("nan")


async def soak_run(server: ServerProcess, args: argparse.Namespace) -> dict[str, Any]:
    soak = Soak(server.url, args.minutes, args.seed)
    curve: list[tuple[float, float]] = []
    sampler = asyncio.ensure_future(sample(server.proc.pid, soak, args.sample_s, curve))
    await asyncio.gather(*(soak.client(n) for n in range(args.sessions)))
    await sampler
    await asyncio.sleep(args.idle_s)
    idle_mb = status_mb(server.proc.pid)
    ten = 600.0
    first = [mb for t, mb in curve if t <= ten]
    last = [mb for t, mb in curve if t >= curve[-1][0] - ten]
    return {
        "minutes": args.minutes, "sessions": args.sessions, "turns": soak.turns, "reconnects": soak.reconnects,
        "errors": len(soak.errors), "error_examples": soak.errors[:5],
        "rss_first_10min_median_mb": statistics.median(first), "rss_last_10min_median_mb": statistics.median(last),
        "rss_max_mb": max(mb for _, mb in curve), "slope_second_half_mb_per_hour":
            round(slope_mb_per_hour(curve[len(curve) // 2 :]), 1),
        f"rss_after_{args.idle_s:g}s_idle_mb": idle_mb, "curve": curve,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--sessions", type=int, default=6)
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--idle-s", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with ServerProcess() as server:
        result = run_client(soak_run(server, args))
    summary = {k: v for k, v in result.items() if k != "curve"}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
