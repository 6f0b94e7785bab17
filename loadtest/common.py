"""Shared helpers for benchmarks: a server subprocess, percentiles, stream accounting."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

import httpx

BENCH_TEXT_120 = "The quick brown fox jumps over the lazy dog, while the clever cat watches from a sunny windowsill nearby."
PARAGRAPH = (
    "Streaming speech synthesis turns text into audio while the text is still arriving. "
    "A good gateway starts speaking after the first clause, keeps every listener ahead of playback, "
    "and stops the moment someone interrupts. Dr. Smith measured 3.14 seconds of audio per second "
    "on a small machine, which is plenty for several conversations at once. "
)


def long_text(chars: int) -> str:
    text = PARAGRAPH * (chars // len(PARAGRAPH) + 1)
    return text[:chars].rsplit(" ", 1)[0] + "."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`realtime serve` in a child process, as a user runs it."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, "REALTIME_LOG_LEVEL": "WARNING", **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "realtime", "serve", "--port", str(self.port), *args], env=full_env
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{self.url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("server did not become ready")
            time.sleep(0.1)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


@dataclass
class StreamTrace:
    """Arrival times of a PCM stream, to judge whether playback would ever stall."""

    bytes_per_second: float
    started: float
    arrivals: list[tuple[float, int]] = field(default_factory=list)  # (time, cumulative bytes before chunk)
    total_bytes: int = 0

    def add(self, now: float, size: int) -> None:
        self.arrivals.append((now, self.total_bytes))
        self.total_bytes += size

    @property
    def ttfa(self) -> float:
        return self.arrivals[0][0] - self.started if self.arrivals else float("nan")

    @property
    def total_s(self) -> float:
        return self.arrivals[-1][0] - self.started if self.arrivals else float("nan")

    @property
    def audio_s(self) -> float:
        return self.total_bytes / self.bytes_per_second

    def underruns(self, tolerance_s: float = 0.02) -> tuple[int, float]:
        """Chunks that arrived after real-time playback (from the first byte) needed them."""
        if not self.arrivals:
            return 0, 0.0
        t0, count, worst, shift = self.arrivals[0][0], 0, 0.0, 0.0
        for now, before in self.arrivals[1:]:
            late = (now - t0 - shift) - before / self.bytes_per_second
            if late > tolerance_s:
                count += 1
                worst = max(worst, late)
                shift += late
        return count, worst
