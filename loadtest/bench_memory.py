"""Server memory: per idle realtime session, and with Piper after long or non-Latin input and idle time.

    python -m loadtest.bench_memory [--sessions 1000] [--idle-s 60] [--before PATH] [--json FILE]

Runs `realtime serve` (Piper, one worker per core) in a child process and reads its
resident set size (VmRSS) from /proc after each step:

- N idle realtime sessions open (each has received `session.created`): RSS per session, and
  after they closed;
- on a fresh server each (loaded and warm after one short request): a 4,096-character English
  input, a 24-character Arabic input (espeak spells every letter: ~16 s of audio from one
  segment) and 4,096 digits, through `POST /v1/audio/speech`: the peak RSS (VmHWM), RSS when
  the response has ended, and after `--idle-s` seconds with nothing to do.

`--before PATH`: also run the same steps against the gateway checked out at PATH (e.g. a
`git worktree` of the previous commit), first, on the same machine, for a before/after table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import httpx
import websockets

from .common import ServerProcess, long_text, run_client

ARABIC = "مرحبا بكم في خدمة العملاء"
DIGITS = "7" * 4096


def status_mb(pid: int, field: str = "VmRSS") -> float:
    """`VmRSS` (resident now) or `VmHWM` (the peak since the process started) from /proc, in MB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field}")


def speak(url: str, text: str) -> float:
    """Synthesize `text` as pcm through REST; returns the audio seconds received."""
    body = {"model": "tts-1", "voice": "alloy", "input": text, "response_format": "pcm"}
    with httpx.stream("POST", f"{url}/v1/audio/speech", json=body, timeout=600) as response:
        response.raise_for_status()
        size = sum(len(chunk) for chunk in response.iter_bytes())
    return size / 2 / 24000


async def open_idle_sessions(ws_url: str, count: int) -> list[websockets.ClientConnection]:
    sockets = []
    for _ in range(count):
        ws = await websockets.connect(f"{ws_url}/v1/realtime", max_queue=4)
        await ws.recv()  # session.created
        sockets.append(ws)
    return sockets


async def idle_session_cost(server: ServerProcess, count: int) -> dict[str, float]:
    ws_url = server.url.replace("http", "ws", 1)
    before = status_mb(server.proc.pid)
    sockets = await open_idle_sessions(ws_url, count)
    await asyncio.sleep(1.0)
    during = status_mb(server.proc.pid)
    for ws in sockets:
        await ws.close()
    await asyncio.sleep(1.0)
    return {"sessions": count, "rss_before_mb": before, "rss_open_mb": during,
            "per_session_kib": (during - before) * 1024 / count, "rss_closed_mb": status_mb(server.proc.pid)}  # fmt: skip


INPUTS = {"english_4096": long_text(4096), "arabic_24": ARABIC, "digits_4096": DIGITS}


def measure(label: str, args: argparse.Namespace, checkout: Path | None) -> dict[str, object]:
    """Idle sessions on one server; then each input on a fresh server (its peak is the process's)."""
    env = {"REALTIME_MAX_SESSIONS": str(args.sessions + 16), "REALTIME_IDLE_TIMEOUT_S": "600"}
    steps: dict[str, object] = {}
    with ServerProcess(env=env, checkout=checkout) as server:
        speak(server.url, "Warm up, please.")
        steps["idle_sessions"] = run_client(idle_session_cost(server, args.sessions))
        print(label, "idle_sessions", steps["idle_sessions"], flush=True)
    for name, text in INPUTS.items():
        with ServerProcess(env=env, checkout=checkout) as server:
            pid = server.proc.pid
            speak(server.url, "Warm up, please.")
            loaded = status_mb(pid)
            started = time.monotonic()
            audio_s = speak(server.url, text)
            step = {"loaded_mb": loaded, "audio_s": round(audio_s, 1), "wall_s": round(time.monotonic() - started, 1),
                    "peak_mb": status_mb(pid, "VmHWM"), "after_mb": status_mb(pid)}  # fmt: skip
            time.sleep(args.idle_s)
            step[f"after_{args.idle_s:g}s_idle_mb"] = status_mb(pid)
        steps[name] = step
        print(label, name, step, flush=True)
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--idle-s", type=float, default=60.0)
    parser.add_argument("--before", type=Path, help="a checkout of the previous build, measured first")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict[str, object] = {}
    if args.before is not None:
        results["before"] = measure("before", args, args.before.resolve())
    results["after"] = measure("after", args, None)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
