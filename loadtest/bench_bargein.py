"""Barge-in latency: speech onset in the uplink → the last audio frame of the interrupted context.

    python -m loadtest.bench_bargein [--trials 20] [--min-speech-ms 60,80,150]

Runs `realtime serve` (Piper) in a child process. Each trial opens a session,
starts a long answer, and once audio flows streams a caller's sentence
(piper-tts called directly, resampled to 16 kHz) in real-time 20 ms
frames after 300 ms of silence. Onset = when a microphone would deliver the
frame holding the first speech sample (its scheduled send time). Latency = arrival of the last audio frame of
the interrupted context (the fade) − onset; also reported: stale frames
received after `speech.interrupted` (must be 0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import numpy as np
import websockets

from realtime.audio.resample import StreamResampler

from .common import ServerProcess, long_text, percentile, run_client

FRAME = 320  # 20 ms at 16 kHz


def caller_pcm(rate: int, silence_s: float, tail_s: float = 0.0) -> tuple[np.ndarray, int]:
    """Silence, a caller's sentence, silence: int16 at `rate`, and the sample where speech starts.

    Synthesized by piper-tts directly (not through the gateway), so the stimulus does not change
    when the gateway's segmentation does.
    """
    from .bench_rest import DirectPiper

    voice = DirectPiper().voice
    speech = np.concatenate([c.audio_float_array for c in voice.synthesize("Hold on, I have a question.")])
    resampler = StreamResampler(voice.config.sample_rate, rate)
    speech = np.concatenate([resampler.process(speech), resampler.flush()])
    audio = np.concatenate([np.zeros(int(rate * silence_s), np.float32), speech,
                            np.zeros(int(rate * tail_s), np.float32)])  # fmt: skip
    loud = np.flatnonzero(np.abs(audio) > 1e-3)  # -60 dBFS: the silence before it is exact zeros
    return (np.clip(audio, -1, 1) * 32767).astype(np.int16), int(loud[0])


def caller_speech() -> tuple[list[bytes], int]:
    """20 ms pcm16 frames at 16 kHz of 300 ms silence + a caller's sentence, and the onset frame's index."""
    pcm16, onset = caller_pcm(16000, 0.3)
    frames = [pcm16[i : i + FRAME].astype("<i2").tobytes() for i in range(0, pcm16.size - FRAME + 1, FRAME)]
    return frames, onset // FRAME


async def trial(ws_url: str, frames: list[bytes], onset: int, min_speech_ms: int) -> dict[str, float]:
    async with websockets.connect(f"{ws_url}/v1/realtime") as ws:
        await ws.recv()  # session.created
        await ws.send(json.dumps({"type": "session.update", "input_audio": {"encoding": "pcm", "sample_rate": 16000},
                                  "barge_in": {"enabled": True, "min_speech_ms": min_speech_ms}}))  # fmt: skip
        await ws.send(json.dumps({"type": "text.append", "text": long_text(600)}))
        await ws.send(json.dumps({"type": "text.done"}))
        audio_times: list[float] = []
        interrupted_at: float | None = None
        stale = 0
        first_audio = asyncio.Event()
        onset_sent: list[float] = []

        async def reader() -> None:
            nonlocal interrupted_at, stale
            async for message in ws:
                now = time.perf_counter()
                if isinstance(message, bytes):
                    if interrupted_at is None:
                        audio_times.append(now)
                        first_audio.set()
                    else:
                        stale += 1
                elif json.loads(message)["type"] == "speech.interrupted":
                    interrupted_at = now

        async def talker() -> None:
            await first_audio.wait()
            await asyncio.sleep(0.5)
            start = time.perf_counter()
            for i, frame in enumerate(frames):
                # A microphone delivers a frame once its 20 ms have been captured.
                await asyncio.sleep(max(0.0, start + (i + 1) * 0.02 - time.perf_counter()))
                await ws.send(frame)
                if i == onset:  # when a microphone would have delivered it, whatever our own lag
                    onset_sent.append(start + (i + 1) * 0.02)
                if interrupted_at is not None:
                    break

        read = asyncio.create_task(reader())
        await asyncio.wait_for(talker(), 30)
        await asyncio.sleep(0.5)  # watch for stale audio
        read.cancel()
    if interrupted_at is None or not onset_sent:
        return {"missed": 1.0}
    last = max(t for t in audio_times if t <= interrupted_at)
    return {"latency_ms": (last - onset_sent[0]) * 1e3, "event_ms": (interrupted_at - onset_sent[0]) * 1e3,
            "stale_frames": float(stale)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--min-speech-ms", default="60,80,150")
    args = parser.parse_args()
    with ServerProcess() as server:
        frames, onset = caller_speech()
        ws_url = server.url.replace("http", "ws", 1)
        print(
            "| min_speech_ms | barge-in latency p50 | p95 | speech.interrupted p50 | stale frames | missed |"
        )
        print("|---|---|---|---|---|---|")
        for ms in (int(x) for x in args.min_speech_ms.split(",")):
            results = [run_client(trial(ws_url, frames, onset, ms)) for _ in range(args.trials)]
            ok = [r for r in results if "latency_ms" in r]
            lat = [r["latency_ms"] for r in ok]
            print(f"| {ms} | {percentile(lat, 50):.0f} ms | {percentile(lat, 95):.0f} ms | "
                  f"{percentile([r['event_ms'] for r in ok], 50):.0f} ms | {sum(r['stale_frames'] for r in ok):.0f} | "
                  f"{len(results) - len(ok)} |")  # fmt: skip


if __name__ == "__main__":
    main()
