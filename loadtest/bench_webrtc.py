"""WebRTC vs. WebSocket, same server, same run: time to first audio, pacing jitter, barge-in.

    python -m loadtest.bench_webrtc --trials 20

- Time to first audio: a short sentence + `text.flush` on the data channel → the first RTP
  packet whose audio level is not silence, as it arrives at the client (before the client's
  own jitter buffer, which is the client's choice, not the gateway's). Next to it, the same
  sentence over `/v1/realtime` → the first binary frame that is not silence by the same rule
  (Piper's output starts with a little silence). Trials alternate the two paths.
- Pacing jitter: inter-arrival time of the server's RTP packets minus 20 ms, while it speaks.
- Barge-in: the client's microphone track plays silence then real speech (Piper, called
  directly) while the server speaks; latency is speech onset (when the microphone delivered
  that frame) → the last loud RTP packet received.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import numpy as np
import websockets

from .bench_bargein import caller_pcm
from .common import ServerProcess, long_text, percentile
from .webrtc_client import SILENCE_DBOV, WebRtcClient

SENTENCES = [
    "Sure, I can help with that.",
    "The train leaves at nine.",
    "Let me check the weather for you.",
    "That sounds like a good plan.",
]


async def ttfa_websocket(ws_url: str, text: str) -> float:
    async with websockets.connect(f"{ws_url}/v1/realtime?sample_rate=48000") as ws:
        await ws.recv()  # session.created
        sent = time.monotonic()
        await ws.send(json.dumps({"type": "text.append", "text": text}))
        await ws.send(json.dumps({"type": "text.flush"}))
        async for message in ws:
            if isinstance(message, bytes) and level_dbov(message) < SILENCE_DBOV:
                return (time.monotonic() - sent) * 1000
    raise RuntimeError("no audio")


def level_dbov(pcm16: bytes) -> float:
    """RFC 6465's audio level, as aiortc puts in each RTP packet: the same "not silence" rule both ways."""
    samples = np.frombuffer(pcm16, "<i2").astype(np.float64)
    rms = float(np.sqrt(np.mean(samples**2))) / 32767 if samples.size else 0.0
    return 127.0 if rms <= 0 else min(127.0, -20 * np.log10(rms))


async def ttfa_webrtc(url: str, text: str) -> tuple[float, list[float]]:
    client = WebRtcClient(url)
    await client.connect()
    try:
        await client.wait_event("session.created")
        await asyncio.sleep(0.3)  # the track is flowing (silence)
        sent = client.send({"type": "text.append", "text": text})
        client.send({"type": "text.flush"})
        while (first := client.first_loud_packet_after(sent)) is None:
            if time.monotonic() - sent > 10:
                raise RuntimeError("no audio over WebRTC")
            await asyncio.sleep(0.002)
        await asyncio.sleep(1.5)  # it speaks: collect packet gaps
        gaps = [(b.at - a.at) * 1000 - 20.0 for a, b in zip(client.packets, client.packets[1:], strict=False)]
        return (first - sent) * 1000, gaps
    finally:
        await client.close()


async def barge_in_webrtc(url: str, mic: np.ndarray, onset: int) -> dict[str, float]:
    client = WebRtcClient(url, microphone=mic)
    await client.connect()
    try:
        client.send({"type": "text.append", "text": long_text(600)})
        client.send({"type": "text.done"})
        interrupted = await client.wait_event("speech.interrupted", timeout=15)
        await asyncio.sleep(0.5)
        assert client.mic_track is not None and client.mic_track.started_at is not None
        onset_at = client.mic_track.started_at + (onset + 1) * 0.02  # when a microphone delivers it
        loud = [p.at for p in client.packets if p.level_dbov is not None and p.level_dbov < SILENCE_DBOV]
        last = max(loud)
        event_at = next(at for at, e in client.events if e is interrupted)
        return {"latency_ms": (last - onset_at) * 1000, "event_ms": (event_at - onset_at) * 1000}
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--json", default="docs/bench-webrtc.json")
    parser.add_argument("--checkout", type=Path, help="measure the gateway of this source tree instead")
    args = parser.parse_args()
    with ServerProcess(checkout=args.checkout) as server:
        ws_url = server.url.replace("http", "ws", 1)
        ws_ms: list[float] = []
        rtc_ms: list[float] = []
        gaps: list[float] = []
        for i in range(args.trials):
            text = SENTENCES[i % len(SENTENCES)]
            ws_ms.append(asyncio.run(ttfa_websocket(ws_url, text)))
            first, trial_gaps = asyncio.run(ttfa_webrtc(server.url, text))
            rtc_ms.append(first)
            gaps.extend(trial_gaps)
        mic, onset_sample = caller_pcm(48000, 1.5, 1.0)
        onset = onset_sample // 960  # the 20 ms frame the speech starts in
        barge = [
            asyncio.run(barge_in_webrtc(server.url, mic, onset)) for _ in range(max(5, args.trials // 2))
        ]
    jitter = [abs(g) for g in gaps]
    result = {
        "trials": args.trials,
        "ttfa_ms": {
            "websocket": {"p50": percentile(ws_ms, 50), "p95": percentile(ws_ms, 95)},
            "webrtc": {"p50": percentile(rtc_ms, 50), "p95": percentile(rtc_ms, 95)},
            "webrtc_minus_websocket_p50": percentile(rtc_ms, 50) - percentile(ws_ms, 50),
            "paired_difference_p50": percentile([r - w for r, w in zip(rtc_ms, ws_ms, strict=True)], 50),
        },
        "pacing_jitter_ms": {
            "p50": percentile(jitter, 50),
            "p99": percentile(jitter, 99),
            "packets": len(jitter),
        },
        "barge_in_ms": {
            "p50": percentile([b["latency_ms"] for b in barge], 50),
            "p95": percentile([b["latency_ms"] for b in barge], 95),
            "event_p50": percentile([b["event_ms"] for b in barge], 50),
            "trials": len(barge),
        },
    }
    with open(args.json, "w", encoding="utf-8") as out:
        json.dump(result, out, indent=2)
    t = result["ttfa_ms"]
    print("| path | TTFA p50 | p95 |\n|---|---|---|")
    print(f"| WebSocket | {t['websocket']['p50']:.0f} ms | {t['websocket']['p95']:.0f} ms |")
    print(f"| WebRTC | {t['webrtc']['p50']:.0f} ms | {t['webrtc']['p95']:.0f} ms |")
    print(f"WebRTC - WebSocket: p50s {t['webrtc_minus_websocket_p50']:+.1f} ms, "
          f"paired trials p50 {t['paired_difference_p50']:+.1f} ms")  # fmt: skip
    j = result["pacing_jitter_ms"]
    print(f"pacing jitter: p50 {j['p50']:.2f} ms, p99 {j['p99']:.2f} ms over {j['packets']} packets")
    b = result["barge_in_ms"]
    print(
        f"barge-in over WebRTC: p50 {b['p50']:.0f} ms, p95 {b['p95']:.0f} ms (event p50 {b['event_p50']:.0f} ms)"
    )


if __name__ == "__main__":
    main()
