"""One browser (or any WebRTC client) connected to one realtime session.

The peer owns an aiortc `RTCPeerConnection` and three bridges to the session:
- out: the session's 20 ms PCM frames go into a `PacedAudioTrack` (48 kHz,
  silence when idle), its events go out on the data channel as JSON;
- in: data channel messages are the native protocol's JSON commands (at most
  `max_frame_bytes` each, as on the WebSocket; a larger one is answered with a
  `frame_too_large` error and dropped unparsed), and the microphone track is
  decoded to PCM and fed to the session's VAD (barge-in).
A peer ends when the connection fails or closes, the client hangs up, or the
session ends; every resource (tracks, tasks, engine jobs, the session slot)
is freed in `close()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import numpy as np
from aiortc import RTCConfiguration, RTCDataChannel, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import candidate_from_sdp

from ..session import server_events
from ..session.errors import ClientError
from ..session.realtime import RealtimeSession
from .close_codes import Close
from .commands import apply_command
from .idle import Activity
from .realtime_protocol import decode_text_frame, parse_command
from .runtime import SessionRuntime
from .webrtc_track import PacedAudioTrack

log = logging.getLogger(__name__)

SAMPLE_RATE = 48000
FRAME_MS = 20
LEAD_MS = 60.0
"""The track's queue: small, so barge-in drops little, yet enough to ride out a slow event-loop tick."""
MAX_INBOX = 256
"""Data channel messages waiting for the session; past this the peer is flooding and is told so."""
MAX_CHANNEL_BUFFER = 1 << 20
"""Bytes of events the data channel may hold for a peer that stopped reading before we close it."""
CONNECT_TIMEOUT_S = 30.0
DISCONNECTED_GRACE_S = 5.0
CHANNEL_GRACE_S = 2.0
_CLOSED = object()


class _Oversized:
    """Stands in the inbox for a message over the size limit: its error keeps its place in order."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size


def message_bytes(message: str | bytes) -> int:
    """A data channel message's size on the wire (UTF-8 for text)."""
    if isinstance(message, str):
        return len(message) if message.isascii() else len(message.encode())
    return len(message)


class PassThroughAudioBuffer:
    """A jitter buffer that hands each audio packet on at once: one Opus packet is one whole frame.

    aiortc's own holds 4 frames back (prefetch) and releases a frame only when the next
    one has arrived: 100 ms of barge-in latency the VAD does not need (a late or lost
    microphone packet costs it nothing). Packets are passed on in arrival order.
    """

    capacity = 16

    def add(self, packet: Any) -> tuple[bool, Any]:
        return False, JitterFrame(data=packet._data, timestamp=packet.timestamp)


def shorten_uplink_jitter_buffer(pc: RTCPeerConnection, track: MediaStreamTrack) -> bool:
    """Swap the microphone receiver's jitter buffer for `PassThroughAudioBuffer`.

    aiortc has no option for it, so this sets the receiver's private buffer; if aiortc
    changes, it logs and does nothing (barge-in is then ~100 ms slower).
    """
    for transceiver in pc.getTransceivers():
        receiver = transceiver.receiver
        if receiver.track is track and hasattr(receiver, "_RTCRtpReceiver__jitter_buffer"):
            receiver._RTCRtpReceiver__jitter_buffer = PassThroughAudioBuffer()  # type: ignore[attr-defined]
            return True
    log.warning("could not replace the uplink jitter buffer; barge-in may be ~100 ms slower")
    return False


def rtc_configuration(ice_servers: list[str]) -> RTCConfiguration:
    """No default STUN server: aiortc's would be Google's, which a closed network cannot reach."""
    return RTCConfiguration(iceServers=[RTCIceServer(urls=url) for url in ice_servers])


class WebRtcConnection:
    """What the runtime serves the session over: audio into the track, events onto the data channel."""

    def __init__(self, peer: WebRtcPeer) -> None:
        self.peer = peer

    async def send_audio(self, data: bytes, context_id: str) -> None:
        track = self.peer.track
        pcm = np.frombuffer(data, dtype="<i2").astype(np.int16, copy=False)
        step = track.frame_samples
        for start in range(0, pcm.size, step):
            await track.push(pcm[start : start + step], context_id)

    async def send_event(self, event: dict[str, Any]) -> None:
        if event.get("type") == "speech.interrupted":
            # Frames of the context still queued in the track must not play either.
            dropped = self.peer.track.drop(str(event.get("context_id")))
            if dropped:
                event = {**event, "sent_ms": round(max(0.0, event["sent_ms"] - dropped), 1)}
        self.peer.send_json(event)

    async def close(self, code: int, reason: str) -> None:
        self.peer.send_json(server_events.session_closed(code, reason))
        await self.peer.close()


class WebRtcPeer:
    def __init__(
        self, runtime: SessionRuntime, session: RealtimeSession, pc_id: str, api_key: str | None
    ) -> None:
        self.runtime = runtime
        self.session = session
        self.id = pc_id
        self.api_key = api_key
        webrtc = runtime.settings.webrtc
        self.pc = RTCPeerConnection(rtc_configuration(webrtc.ice_servers))
        self.track = PacedAudioTrack(
            sample_rate=SAMPLE_RATE, frame_ms=FRAME_MS, capacity_frames=max(1, int(LEAD_MS // FRAME_MS))
        )
        self.channel: RTCDataChannel | None = None
        self.inbox: asyncio.Queue[object] = asyncio.Queue()
        self.connected = asyncio.Event()
        self.channel_open = asyncio.Event()
        self.ended = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self.pc.on("datachannel", self._on_datachannel)
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)

    # -- signalling -----------------------------------------------------------------------------

    async def answer(self, sdp: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        self.pc.addTrack(self.track)
        await self.pc.setLocalDescription(await self.pc.createAnswer())  # gathers every candidate
        return self.pc.localDescription.sdp

    async def add_candidate(self, candidate: str, sdp_mid: str | None, sdp_mline_index: int | None) -> None:
        if not candidate:  # the end-of-candidates marker
            return
        parsed = candidate_from_sdp(candidate.removeprefix("candidate:"))
        parsed.sdpMid = sdp_mid
        parsed.sdpMLineIndex = sdp_mline_index
        await self.pc.addIceCandidate(parsed)

    # -- events from aiortc ---------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if self.channel is not None:
            return  # one event channel per peer; others are ignored
        self.channel = channel
        if channel.readyState == "open":
            self.channel_open.set()
        channel.on("open", self.channel_open.set)

        max_bytes = self.session.limits.max_frame_bytes

        @channel.on("message")
        def _on_message(message: str | bytes) -> None:
            if self.inbox.qsize() >= MAX_INBOX:
                self.session.emit(
                    server_events.error(
                        "rate_limited", f"more than {MAX_INBOX} messages waiting; message dropped"
                    )
                )
                return
            size = message_bytes(message)
            self.inbox.put_nowait(_Oversized(size) if size > max_bytes else message)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            shorten_uplink_jitter_buffer(self.pc, track)
            self._spawn(self._read_microphone(track))

    def _on_state(self) -> None:
        state = self.pc.connectionState
        log.info("webrtc state", extra={"session_id": self.session.id, "pc_id": self.id, "state": state})
        if state == "connected":
            self.connected.set()
        elif state in ("failed", "closed"):
            self.inbox.put_nowait(_CLOSED)
        elif state == "disconnected":
            self._spawn(self._end_unless_reconnected())

    async def _end_unless_reconnected(self) -> None:
        await asyncio.sleep(DISCONNECTED_GRACE_S)
        if self.pc.connectionState in ("disconnected", "failed", "closed"):
            self.inbox.put_nowait(_CLOSED)

    async def _read_microphone(self, track: MediaStreamTrack) -> None:
        """Decoded Opus frames (48 kHz, often stereo) → mono PCM → the session's VAD."""
        configured_rate: int | None = None
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            samples = frame.to_ndarray()
            channels = len(frame.layout.channels)
            mono = samples.reshape(-1, channels).mean(axis=1) if channels > 1 else samples.reshape(-1)
            pcm = mono.astype(np.int16) if mono.dtype != np.int16 else mono
            if configured_rate != frame.sample_rate:
                configured_rate = frame.sample_rate
                self.session.update({"input_audio": {"encoding": "pcm", "sample_rate": frame.sample_rate}})
            try:
                self.session.feed_uplink(pcm.tobytes())
            except ClientError:  # input_audio was changed by the client: put it back
                configured_rate = None

    # -- events to the client -------------------------------------------------------------------

    def send_json(self, event: dict[str, Any]) -> None:
        channel = self.channel
        if channel is None or channel.readyState != "open":
            return  # no event channel (an audio-only peer): the control API observes instead
        if channel.bufferedAmount > MAX_CHANNEL_BUFFER:
            raise TimeoutError("the data channel is not being read")
        channel.send(json.dumps(event))

    # -- running --------------------------------------------------------------------------------

    async def receive(self, session: RealtimeSession) -> Close | None:
        """The session's receive loop: commands from the data channel until the peer goes away."""

        def quiet_since(activity: Activity) -> float | None:  # media flowing: a listener may stay quiet
            return None if self.pc.connectionState == "connected" else activity.last

        return await self.runtime.until_idle(
            session, self._read_channel, quiet_since=quiet_since, announce=False
        )

    async def _read_channel(self, activity: Activity) -> None:
        session, runtime = self.session, self.runtime
        max_text = runtime.settings.max_text_chars
        while True:
            message = await self.inbox.get()
            activity.touch()
            if message is _CLOSED:
                return
            with runtime.client_errors(session):
                if isinstance(message, _Oversized):
                    raise ClientError(
                        "frame_too_large",
                        f"a data channel message of {message.size} bytes is over the limit of "
                        f"{session.limits.max_frame_bytes} (max_frame_bytes); it was dropped",
                    )
                if not isinstance(message, str):
                    raise ClientError("invalid_frame", "the data channel carries JSON text messages")
                apply_command(session, parse_command(decode_text_frame(message), max_text_chars=max_text))

    async def wait_connected(self) -> bool:
        try:
            await asyncio.wait_for(self.connected.wait(), CONNECT_TIMEOUT_S)
        except TimeoutError:
            return False
        # The client's data channel opens right after the transport; an audio-only peer has none.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.channel_open.wait(), CHANNEL_GRACE_S)
        return True

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.inbox.put_nowait(_CLOSED)  # ends the session's reader
        self.track.stop()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        with contextlib.suppress(Exception):
            await self.pc.close()
        self.ended.set()
