"""An emulated Twilio Media Streams client: the messages Twilio really sends, numbers as strings."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np

from realtime.audio.g711 import mulaw_encode

FRAME_BYTES = 160  # 20 ms of μ-law at 8 kHz
SILENCE = bytes([0xFF]) * FRAME_BYTES


def connected() -> str:
    return json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})


def start(stream_sid: str, **custom: str) -> str:
    return json.dumps({
        "event": "start", "sequenceNumber": "1", "streamSid": stream_sid,
        "start": {"streamSid": stream_sid, "accountSid": "AC0", "callSid": "CA0", "tracks": ["inbound"],
                  "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                  "customParameters": custom},
    })  # fmt: skip


def media(stream_sid: str, seq: int, payload: bytes = SILENCE) -> str:
    return json.dumps({
        "event": "media", "sequenceNumber": str(seq + 2), "streamSid": stream_sid,
        "media": {"track": "inbound", "chunk": str(seq + 1), "timestamp": str(seq * 20),
                  "payload": base64.b64encode(payload).decode()},
    })  # fmt: skip


def stop(stream_sid: str) -> str:
    return json.dumps({"event": "stop", "sequenceNumber": "999", "streamSid": stream_sid, "stop": {}})


def mulaw_frames(pcm8k: np.ndarray) -> list[bytes]:
    """Split 8 kHz int16 audio into 20 ms μ-law payloads (last one padded with silence)."""
    data = mulaw_encode(pcm8k)
    frames = [data[i : i + FRAME_BYTES] for i in range(0, len(data), FRAME_BYTES)]
    if frames and len(frames[-1]) < FRAME_BYTES:
        frames[-1] = frames[-1] + SILENCE[: FRAME_BYTES - len(frames[-1])]
    return frames


def parse(message: str | bytes) -> dict[str, Any]:
    assert isinstance(message, str), "Twilio messages are text frames"
    return json.loads(message)
