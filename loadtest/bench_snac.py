"""SNAC decoding for Orpheus: batched streaming decoder vs. per-stream and the classic 28-token window.

    python -m loadtest.bench_snac [--device cpu] [--streams 1,4,8,16] [--seconds 2] [--plans 1,4]

Uses a randomly initialised SNAC of the real 24 kHz shape (weights cannot be
downloaded here; decode cost depends on the shape only) with random codes.

(a) Throughput: S streams decode `--seconds` of audio each, all frames available
    at once, so the decoder is the bottleneck. "audio x" is input audio seconds
    decoded per wall second (S * seconds / wall). Per-stream: the same worker with
    `max_batch=1`, one window at a time. Batched: one `SnacBatcher` for all.
    Classic: a 4-frame window per new frame, keeping its second frame.
(b) First audio: tokens before the first chunk, first-window decode time on an
    idle decoder, and the sum with token arrival at real time (82 tok/s).
(c) Seam error: streamed output vs. one whole-sequence decode (positional noise
    makes both comparable), as SNR in dB and max |error|.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from realtime.engines.orpheus.codes import CODEBOOK_SIZE, SAMPLE_RATE, SAMPLES_PER_FRAME, frames_to_levels
from realtime.engines.orpheus.snac_batcher import SnacBatcher
from realtime.engines.orpheus.snac_model import decode_all, decode_windows, load_snac
from realtime.engines.orpheus.snac_stream import SnacStream, WindowPlanner, decode_stream_offline

from .report import write_json

FRAME_S = SAMPLES_PER_FRAME / SAMPLE_RATE
TOKEN_S = FRAME_S / 7  # 82 tokens/s is real time


def random_frames(count: int, seed: int) -> list[list[int]]:
    return np.random.default_rng(seed).integers(0, CODEBOOK_SIZE, size=(count, 7)).tolist()


# --------------------------------------------------------------------------- (a) throughput


def label(plan: int | None) -> str:
    return "adaptive" if plan is None else f"N={plan}"


async def classic_stream(frames: list[list[int]], batcher: SnacBatcher) -> int:
    """The peer decoders' scheme: every 7 tokens from 28 on, decode the last 4 frames, keep samples 2048:4096."""
    emitted = 0
    for n in range(4, len(frames) + 1):
        audio = await batcher.decode(frames_to_levels(frames[n - 4 : n]), n - 4)
        emitted += audio[SAMPLES_PER_FRAME : 2 * SAMPLES_PER_FRAME].size
    return emitted


async def planned_stream(frames: list[list[int]], batcher: SnacBatcher, plan: int | None) -> int:
    planner = WindowPlanner() if plan is None else WindowPlanner(min_frames=plan, max_frames=plan)
    stream = SnacStream(planner)
    emitted = 0
    for frame in frames:
        chunk = await stream.feed(frame, batcher, buffered_s=1.0)
        emitted += 0 if chunk is None else chunk.size
    return emitted + (await stream.finish(batcher)).size


async def throughput(
    model: nn.Module,
    streams: int,
    frames: int,
    mode: str,
    plan: int | None,
    args: argparse.Namespace,
    *,
    threads: int | None = None,
    workers: int | None = None,
    max_batch: int | None = None,
) -> dict[str, Any]:
    batched = mode == "batched"
    threads = threads or args.threads
    workers = workers or args.workers
    max_batch = (max_batch or args.max_batch) if batched else 1
    batcher = SnacBatcher(
        model,
        max_batch=max_batch,
        max_wait_ms=args.max_wait_ms if batched else 0.0,
        workers=workers,
        torch_threads=threads,
    )
    batcher.start()
    sequences = [random_frames(frames, seed=100 + i) for i in range(streams)]
    started = time.perf_counter()
    if mode == "classic":
        emitted = await asyncio.gather(*(classic_stream(f, batcher) for f in sequences))
    else:
        emitted = await asyncio.gather(*(planned_stream(f, batcher, plan) for f in sequences))
    wall = time.perf_counter() - started
    await batcher.stop()
    stats = batcher.stats.as_dict()
    return {
        "streams": streams,
        "mode": mode,
        "plan": label(plan),
        "threads": threads,
        "workers": workers,
        "max_batch": batcher.max_batch,
        "wall_s": wall,
        "audio_x": streams * frames * FRAME_S / wall,
        "emitted_frames": sum(emitted) / SAMPLES_PER_FRAME / streams,
        "decoded_frames_per_frame": stats["frames"] / (streams * frames),
        **stats,
    }


# --------------------------------------------------------------------------- (b) first audio


def first_audio(model: nn.Module, repeats: int = 5) -> list[dict[str, Any]]:
    rows = []
    for name, frames, chunk in (
        ("classic 28-token window", 4, SAMPLES_PER_FRAME),
        ("streaming (this)", 2, 2 * SAMPLES_PER_FRAME - SnacStream().min_lookahead),
    ):
        window = (frames_to_levels(random_frames(frames, seed=1)), 0)
        decode_windows(model, [window])
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            decode_windows(model, [window])
            times.append(time.perf_counter() - started)
        decode_ms = statistics.median(times) * 1000
        tokens = frames * 7
        rows.append(
            {
                "decoder": name,
                "tokens": tokens,
                "decode_ms": decode_ms,
                "first_audio_ms_at_realtime": tokens * TOKEN_S * 1000 + decode_ms,
                "first_chunk_ms": chunk / SAMPLE_RATE * 1000,
            }
        )
    return rows


# --------------------------------------------------------------------------- (c) seam error


def seam_error(model: nn.Module, frames: int) -> list[dict[str, Any]]:
    sequence = random_frames(frames, seed=7)
    whole = decode_all(model, sequence)
    std = float(np.std(whole))
    rows = []

    def row(name: str, audio: np.ndarray, reference: np.ndarray, redundancy: float) -> dict[str, Any]:
        error = audio - reference
        return {
            "decoder": name,
            "samples": audio.size,
            "expected_samples": reference.size,
            "snr_db": float(20 * np.log10(np.sqrt(np.mean(error**2)) / std)),
            "max_abs": float(np.max(np.abs(error))),
            "max_abs_after_first_chunk": float(np.max(np.abs(error[3 * SAMPLES_PER_FRAME :]))),
            "signal_std": std,
            "decoded_frames_per_frame": redundancy,
        }

    for plan in (1, 4, None):
        planner = WindowPlanner() if plan is None else WindowPlanner(min_frames=plan, max_frames=plan)
        stream = SnacStream(planner)
        audio = np.concatenate(decode_stream_offline(model, sequence, stream, buffered_s=1.0))
        label = "adaptive" if plan is None else f"N={plan}"
        rows.append(row(f"streaming {label}", audio, whole, stream.decoded_window_frames / frames))
    classic = [
        decode_windows(model, [(frames_to_levels(sequence[n - 4 : n]), n - 4)])[0][
            SAMPLES_PER_FRAME : 2 * SAMPLES_PER_FRAME
        ]
        for n in range(4, frames + 1)
    ]
    # The classic decoder never emits the first frame nor the last two: compare what it does emit.
    rows.append(
        row(
            "classic (frames 1..n-3)",
            np.concatenate(classic),
            whole[SAMPLES_PER_FRAME : (frames - 2) * SAMPLES_PER_FRAME],
            4.0,
        )
    )
    return rows


# --------------------------------------------------------------------------- report


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]]) -> str:
    head = "| " + " | ".join(title for _, title, _ in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(format(r[key], fmt) for key, _, fmt in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--streams", default="1,4,8,16", help="concurrent stream counts")
    parser.add_argument("--seconds", type=float, default=2.0, help="audio per stream")
    parser.add_argument("--plans", default="1,4,adaptive", help="new frames per decode: numbers, or adaptive")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads for decoding")
    parser.add_argument("--workers", type=int, default=1, help="SnacBatcher worker threads")
    parser.add_argument("--max-batch", type=int, default=4, help="for the batched rows")
    parser.add_argument("--max-wait-ms", type=float, default=2.0)
    parser.add_argument(
        "--no-classic", action="store_true", help="skip the classic decoder's throughput runs"
    )
    parser.add_argument(
        "--sweep", action="store_true", help="also try threads/workers/max_batch at 8 streams"
    )
    parser.add_argument("--json", default="docs/bench-snac.json")
    args = parser.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    model = load_snac(None, device=args.device)
    device = str(next(model.parameters()).device)
    frames = max(4, round(args.seconds / FRAME_S))
    counts = [int(s) for s in args.streams.split(",")]
    plans: list[int | None] = [None if p == "adaptive" else int(p) for p in args.plans.split(",")]
    print(
        f"SNAC 24 kHz shape, random weights, {device}, torch {torch.__version__}, {args.threads} thread(s), "
        f"{os.cpu_count()} cores; {frames} frames ({frames * FRAME_S:.2f} s) per stream\n"
    )

    runs = []
    for streams in counts:
        if not args.no_classic:
            runs.append(asyncio.run(throughput(model, streams, frames, "classic", 1, args)))
        for plan in plans:
            for mode in ("per-stream", "batched"):
                runs.append(asyncio.run(throughput(model, streams, frames, mode, plan, args)))
        print(f"  {streams} streams done", flush=True)
    for r in runs:
        same = [x for x in runs if x["streams"] == r["streams"]]
        base = [x for x in same if x["mode"] == "per-stream" and x["plan"] == label(plans[0])]
        classic = [x for x in same if x["mode"] == "classic"]
        r["vs_per_stream"] = r["audio_x"] / base[0]["audio_x"] if base else float("nan")
        r["vs_classic"] = r["audio_x"] / classic[0]["audio_x"] if classic else float("nan")
    print("\n(a) Throughput (audio seconds decoded per wall second)\n")
    print(
        table(
            runs,
            [
                ("streams", "streams", "d"),
                ("mode", "decoder", "s"),
                ("plan", "new frames/decode", "s"),
                ("workers", "workers", "d"),
                ("max_batch", "max batch", "d"),
                ("decoded_frames_per_frame", "decoded/frame", ".2f"),
                ("mean_batch", "mean batch", ".2f"),
                ("audio_x", "audio x", ".2f"),
                ("vs_per_stream", f"vs per-stream {label(plans[0])}", ".2f"),
                ("vs_classic", "vs classic", ".2f"),
            ],
        )
    )

    sweep = []
    if args.sweep:
        # (threads, workers, max_batch) with 8 streams and new-frames plan 4; max_batch 1 is per-stream.
        for threads, workers, max_batch in (
            (1, 1, 1),
            (2, 1, 1),
            (1, 2, 1),
            (1, 1, 4),
            (1, 1, 16),
            (2, 1, 4),
            (1, 2, 2),
            (1, 2, 4),
            (1, 2, 16),
        ):
            mode = "per-stream" if max_batch == 1 else "batched"
            sweep.append(
                asyncio.run(
                    throughput(
                        model, 8, frames, mode, 4, args, threads=threads, workers=workers, max_batch=max_batch
                    )
                )
            )
        print("\n(d) Knobs at 8 streams, plan 4\n")
        print(
            table(
                sweep,
                [
                    ("threads", "torch threads", "d"),
                    ("workers", "workers", "d"),
                    ("max_batch", "max batch", "d"),
                    ("mean_batch", "mean batch", ".2f"),
                    ("audio_x", "audio x", ".2f"),
                ],
            )
        )

    first = first_audio(model)
    print("\n(b) First audio (idle decoder; tokens at 82 tok/s)\n")
    print(
        table(
            first,
            [
                ("decoder", "decoder", "s"),
                ("tokens", "tokens", "d"),
                ("decode_ms", "first decode ms", ".0f"),
                ("first_audio_ms_at_realtime", "first audio ms", ".0f"),
                ("first_chunk_ms", "first chunk ms", ".0f"),
            ],
        )
    )

    seams = seam_error(model, max(frames, 24))
    print("\n(c) Seam error vs. one whole-sequence decode\n")
    print(
        table(
            seams,
            [
                ("decoder", "decoder", "s"),
                ("samples", "samples", "d"),
                ("expected_samples", "expected", "d"),
                ("snr_db", "error dB", ".1f"),
                ("max_abs", "max |err|", ".4f"),
                ("max_abs_after_first_chunk", "max |err| after 3 frames", ".4f"),
                ("signal_std", "signal std", ".3f"),
            ],
        )
    )
    write_json(
        args.json,
        {
            "machine": {"cores": os.cpu_count(), "processor": platform.processor(), "device": device},
            "torch": torch.__version__,
            "args": vars(args),
            "frames_per_stream": frames,
            "throughput": runs,
            "sweep": sweep,
            "first_audio": first,
            "seam_error": seams,
        },
    )
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
