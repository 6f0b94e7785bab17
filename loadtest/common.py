"""Shared helpers for benchmarks: a server subprocess, percentiles, stream accounting."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

T = TypeVar("T")

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


def run_client(main: Coroutine[Any, Any, T]) -> T:
    """Run a load generator on uvloop where it is installed (uvicorn[standard] brings it), else asyncio.

    The generator shares the machine with the server it measures: on uvloop it takes about a fifth
    less CPU per received frame, CPU the server's inference threads get instead (docs/BENCHMARKS.md).
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Poll `url` until it answers 200; False if `process` exits or `timeout_s` passes first."""
    deadline = time.monotonic() + timeout_s
    while process.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False


def usable_cpus() -> list[int]:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


@dataclass(frozen=True)
class CoreSplit:
    """Which CPUs the load generator and the server run on.

    A load generator on the server's cores takes CPU the server's inference threads would otherwise
    get (about 5 ms per second of audio received), so it is counted against the server. Giving it
    cores of its own measures the server alone; the engine's capacity is then measured on the
    server's cores only.
    """

    loadgen: frozenset[int]
    server: frozenset[int]

    @classmethod
    def shared(cls) -> CoreSplit:
        cpus = frozenset(usable_cpus())
        return cls(cpus, cpus)

    @classmethod
    def isolated(cls, loadgen_cores: int) -> CoreSplit:
        """The first `loadgen_cores` usable CPUs for the load generator, the rest for the server;
        0: `shared`."""
        if loadgen_cores == 0:
            return cls.shared()
        cpus = usable_cpus()
        if not 0 < loadgen_cores < len(cpus):
            raise ValueError(f"cannot give the load generator {loadgen_cores} of {len(cpus)} CPUs")
        if not hasattr(os, "sched_setaffinity"):
            raise ValueError("this platform cannot pin processes to CPUs")
        return cls(frozenset(cpus[:loadgen_cores]), frozenset(cpus[loadgen_cores:]))

    @property
    def is_shared(self) -> bool:
        return self.loadgen == self.server

    def describe(self) -> str:
        if self.is_shared:
            return f"load generator and server share {len(self.server)} CPUs"
        return f"load generator on CPUs {sorted(self.loadgen)}, server on CPUs {sorted(self.server)}"


@contextmanager
def pinned(cpus: frozenset[int]) -> Iterator[None]:
    """Run this thread (and the threads it starts meanwhile) on `cpus` only; no-op where unsupported."""
    if not hasattr(os, "sched_setaffinity"):
        yield
        return
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, previous)


class ServerProcess:
    """`realtime serve` in a child process, as a user runs it."""

    def __init__(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        cpus: frozenset[int] | None = None,
        checkout: Path | None = None,
    ) -> None:
        """`cpus`: pin the server (every thread it starts) to these CPUs. `checkout`: run the gateway
        of another source tree (a `git worktree` of an earlier commit) instead of this one."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, "REALTIME_LOG_LEVEL": "WARNING", **(env or {})}
        with pinned(cpus) if cpus is not None else nullcontext():
            # The child inherits this thread's affinity at fork: no pre-exec hook needed.
            # `-m` puts the working directory first on sys.path: it picks the checkout that runs.
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "realtime", "serve", "--port", str(self.port), *args], env=full_env,
                cwd=checkout,
            )  # fmt: skip
        if not wait_for_http(f"{self.url}/ready", self.proc, 120):
            self.proc.kill()
            raise RuntimeError("server did not become ready")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def engine_counters(base_url: str, engine: str) -> dict[str, float]:
    """`audio_seconds` and `cpu_seconds` of `engine` from the server's /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    wanted = {
        "realtime_engine_audio_seconds_total": "audio_seconds",
        "realtime_engine_cpu_seconds_total": "cpu_seconds",
    }
    return {
        wanted[sample.name]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name in wanted and sample.labels.get("engine") == engine
    }


def capacity_between(before: dict[str, float], after: dict[str, float], cores: int) -> float | None:
    """The engine's capacity while it ran between two `engine_counters` readings: audio per CPU second
    of its worker threads × `cores` (what it would deliver with every core synthesizing). None if it
    did no work. Measured inside the run, so it follows a VM whose speed drifts."""
    cpu = after["cpu_seconds"] - before["cpu_seconds"]
    return None if cpu <= 0 else cores * (after["audio_seconds"] - before["audio_seconds"]) / cpu


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)
