"""A WebRTC client for the gateway, built on aiortc: what tests and benchmarks talk to it with.

It offers one audio transceiver (sending a microphone track when given PCM,
else receive-only) and an `events` data channel, posts the offer to
`/v1/webrtc/offer`, then records every received audio frame (arrival time,
RMS) and every event from the data channel.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import time
from dataclasses import dataclass, field
from typing import Any

import av
import httpx
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

SILENCE_RMS = 30.0
"""int16 RMS below which a received frame counts as silence (Opus leaves a little noise)."""


class PcmMicrophone(MediaStreamTrack):
    """Plays int16 mono PCM as a microphone, in real time, then silence forever."""

    kind = "audio"

    def __init__(self, pcm: np.ndarray, sample_rate: int = 48000, frame_ms: int = 20) -> None:
        super().__init__()
        self.pcm = pcm.astype(np.int16)
        self.rate = sample_rate
        self.step = sample_rate * frame_ms // 1000
        self.index = 0
        self.started_at: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self.started_at is None:
            self.started_at = time.monotonic()
        # Like a real microphone, a frame is delivered once its 20 ms have been captured.
        due = self.started_at + (self.index + 1) * self.step / self.rate
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        start = self.index * self.step
        chunk = self.pcm[start : start + self.step]
        if chunk.size < self.step:
            chunk = np.concatenate([chunk, np.zeros(self.step - chunk.size, np.int16)])
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = self.rate, start, fractions.Fraction(1, self.rate)
        self.index += 1
        return frame


@dataclass
class ReceivedFrame:
    at: float
    rms: float
    samples: int


@dataclass
class RtpArrival:
    at: float
    level_dbov: int | None
    """The sender's audio level header extension: 0 loudest, 127 digital silence."""


SILENCE_DBOV = 100


@dataclass
class WebRtcClient:
    base_url: str
    api_key: str | None = None
    session: dict[str, Any] = field(default_factory=dict)
    microphone: np.ndarray | None = None
    pc: RTCPeerConnection | None = None
    pc_id: str | None = None
    session_id: str | None = None
    frames: list[ReceivedFrame] = field(default_factory=list)
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    mic_track: PcmMicrophone | None = None
    packets: list[RtpArrival] = field(default_factory=list)
    """Every audio RTP packet as it arrived, before the client's jitter buffer and decoder
    (aiortc's holds 4 packets back): what the gateway sent, and when, as seen on the wire."""

    def __post_init__(self) -> None:
        self._channel_open = asyncio.Event()
        self._event_arrived = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    async def connect(self, timeout: float = 20.0) -> None:
        self.pc = pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        channel = pc.createDataChannel("events")
        channel.on("open", self._channel_open.set)

        @channel.on("message")
        def _on_message(message: str | bytes) -> None:
            self.events.append((time.monotonic(), json.loads(message)))
            self._event_arrived.set()

        self.channel = channel
        if self.microphone is not None:
            self.mic_track = PcmMicrophone(self.microphone)
            pc.addTrack(self.mic_track)
        else:
            pc.addTransceiver("audio", direction="recvonly")

        @pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            self._tasks.append(asyncio.ensure_future(self._read_audio(track)))

        await pc.setLocalDescription(await pc.createOffer())
        async with httpx.AsyncClient(base_url=self.base_url, timeout=timeout) as http:
            response = await http.post(
                "/v1/webrtc/offer",
                json={"sdp": pc.localDescription.sdp, "type": "offer", "session": self.session},
                headers=self.headers,
            )
        if response.status_code != 200:
            raise RuntimeError(f"offer refused: {response.status_code} {response.text}")
        answer = response.json()
        self.pc_id, self.session_id = answer["pc_id"], answer["session_id"]
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        self._tap_rtp()
        await asyncio.wait_for(self._channel_open.wait(), timeout)

    def _tap_rtp(self) -> None:
        assert self.pc is not None
        for transceiver in self.pc.getTransceivers():
            receiver = transceiver.receiver
            handle = receiver._handle_rtp_packet

            async def tapped(packet: Any, arrival_time_ms: int, handle: Any = handle) -> None:
                level = packet.extensions.audio_level
                self.packets.append(RtpArrival(time.monotonic(), None if level is None else level[1]))
                await handle(packet, arrival_time_ms=arrival_time_ms)

            receiver._handle_rtp_packet = tapped

    def first_loud_packet_after(self, t0: float) -> float | None:
        """Arrival of the first RTP packet after `t0` whose audio level is not silence."""
        return next(
            (
                p.at
                for p in self.packets
                if p.at >= t0 and p.level_dbov is not None and p.level_dbov < SILENCE_DBOV
            ),
            None,
        )

    async def _read_audio(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            samples = frame.to_ndarray().astype(np.float32).reshape(-1)
            channels = len(frame.layout.channels)
            rms = float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0
            self.frames.append(ReceivedFrame(time.monotonic(), rms, samples.size // channels))

    def send(self, message: dict[str, Any]) -> float:
        """Send one command on the data channel; returns when (monotonic) it left."""
        self.channel.send(json.dumps(message))
        return time.monotonic()

    def event_types(self) -> list[str]:
        return [e["type"] for _, e in self.events]

    async def wait_event(self, kind: str, timeout: float = 20.0, after: float = 0.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for at, event in self.events:
                if event.get("type") == kind and at >= after:
                    return event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no '{kind}' event; got {self.event_types()}")
            self._event_arrived.clear()
            try:
                await asyncio.wait_for(self._event_arrived.wait(), remaining)
            except TimeoutError:
                pass

    def first_speech_after(self, t0: float) -> float | None:
        """Arrival time of the first non-silent frame received after `t0`."""
        return next((f.at for f in self.frames if f.at >= t0 and f.rms > SILENCE_RMS), None)

    def speech_span_ms(self, since: float = 0.0) -> float:
        """Audio from the first to the last non-silent frame received after `since`, pauses included."""
        loud = [i for i, f in enumerate(self.frames) if f.at >= since and f.rms > SILENCE_RMS]
        if not loud:
            return 0.0
        return sum(f.samples for f in self.frames[loud[0] : loud[-1] + 1]) * 1000.0 / 48000

    def speech_frames(self, since: float = 0.0, until: float = float("inf")) -> int:
        return sum(1 for f in self.frames if since <= f.at < until and f.rms > SILENCE_RMS)

    async def close(self) -> None:
        if self.pc is not None:
            await self.pc.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
