"""Upstreams for the `http` engine's tests: a fault-injecting speech server, and a shared gateway.

`FaultUpstream` is a small OpenAI-compatible `/v1/audio/speech` server (Starlette on uvicorn, in a
thread) that speaks the tone engine's exact audio and does what its `plan` says: answer an error,
wait before the first byte, stream slowly, split samples across reads, break off mid-stream. It
records every call, and whether the client went away before the end, so a test can assert on
what the upstream saw.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import socket
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from realtime.audio.pcm import float_to_int16
from realtime.engines.tone.engine import tone_samples
from tests.server import LiveServer

RATE = 24000
MS_PER_CHAR = 60.0
VOICES = ("low", "mid", "high")


@dataclass
class Plan:
    """What the upstream does with the next speech requests."""

    status: int = 200
    error: Any = field(default_factory=lambda: {"error": {"message": "the upstream is overloaded"}})
    first_byte_delay_s: float = 0.0
    pace: float = 0.0
    """× real time the audio is streamed at (0: as fast as it can)."""
    read_bytes: int = 4801
    """Bytes per write: odd, so samples are split across reads."""
    break_after_bytes: int | None = None
    """Drop the connection after this much audio (an upstream that dies mid-stream)."""
    stall_after_bytes: int | None = None
    """Send nothing more after this much audio, holding the connection open (a hung upstream)."""
    content_type: str = "audio/pcm"
    sample_rate_header: int | None = RATE
    voices: Any = field(default_factory=lambda: {"voices": [{"id": v, "name": v} for v in VOICES]})
    """The answer of `GET /v1/audio/voices`; None: the server has no such endpoint (404)."""
    voices_status: int = 200


@dataclass
class Call:
    body: dict[str, Any]
    headers: dict[str, str]
    started: float
    sent_bytes: int = 0
    finished: bool = False
    """The whole answer was sent."""
    disconnected_at: float | None = None
    """When the stream stopped before the end (time.monotonic()): the client went away, or the plan
    broke it off."""

    @property
    def open(self) -> bool:
        return not self.finished and self.disconnected_at is None


def expected_audio(text: str, voice: str, speed: float = 1.0) -> np.ndarray:
    """What `FaultUpstream` streams for a request (float32 at 24 kHz, as the gateway decodes it)."""
    return tone_samples(text, voice if voice in VOICES else "mid", RATE, MS_PER_CHAR / speed)


class FaultUpstream:
    """A speech server on loopback that follows `plan` and records `calls`."""

    def __init__(self) -> None:
        self.plan = Plan()
        self.calls: list[Call] = []
        self.voice_requests = 0
        app = Starlette(
            routes=[
                Route("/v1/audio/speech", self._speech, methods=["POST"]),
                Route("/v1/audio/voices", self._voices, methods=["GET"]),
            ]
        )
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        config = uvicorn.Config(app, log_level="critical", lifespan="off", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the fault upstream did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self) -> FaultUpstream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def open_calls(self) -> int:
        return sum(1 for c in self.calls if c.open)

    async def _voices(self, request: Request) -> Response:
        self.voice_requests += 1
        if self.plan.voices is None:
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        return JSONResponse(self.plan.voices, status_code=self.plan.voices_status)

    async def _speech(self, request: Request) -> Response:
        plan = self.plan
        body = await request.json()
        call = Call(body, dict(request.headers), time.monotonic())
        self.calls.append(call)
        if plan.status != 200:
            call.finished = True
            if isinstance(plan.error, str):
                return Response(plan.error, status_code=plan.status, media_type="text/plain")
            return JSONResponse(plan.error, status_code=plan.status)
        audio = float_to_int16(
            expected_audio(body["input"], body.get("voice", "mid"), body.get("speed", 1.0))
        )
        headers = {"X-Sample-Rate": str(plan.sample_rate_header)} if plan.sample_rate_header else {}
        return StreamingResponse(
            self._stream(request, call, audio.tobytes(), plan), media_type=plan.content_type, headers=headers
        )

    async def _stream(self, request: Request, call: Call, data: bytes, plan: Plan) -> AsyncIterator[bytes]:
        """Checks for the client's disconnect before every write, as servers that stop synthesizing
        do (uvicorn drops writes to a closed connection without an error)."""
        try:
            stall_until = time.monotonic() + plan.first_byte_delay_s
            while time.monotonic() < stall_until:
                await asyncio.sleep(0.01)
                if await request.is_disconnected():
                    return
            for start in range(0, len(data), plan.read_bytes):
                piece = data[start : start + plan.read_bytes]
                if plan.break_after_bytes is not None and call.sent_bytes >= plan.break_after_bytes:
                    raise ConnectionAbortedError("the fault upstream breaks off mid-stream")
                while plan.stall_after_bytes is not None and call.sent_bytes >= plan.stall_after_bytes:
                    await asyncio.sleep(0.01)
                    if await request.is_disconnected():
                        return
                if await request.is_disconnected():
                    return
                yield piece
                call.sent_bytes += len(piece)
                if plan.pace:
                    await asyncio.sleep(len(piece) / 2 / RATE / plan.pace)
            call.finished = True
        finally:
            if not call.finished:
                call.disconnected_at = time.monotonic()


def dead_url() -> str:
    """A loopback URL where nothing listens: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@functools.cache
def tone_gateway() -> LiveServer:
    """A gateway serving the tone engine, shared by the tests of one process (stopped at exit): the
    fault-free upstream the engine contract runs against."""
    live = LiveServer(engines=["tone"])
    atexit.register(live.stop)
    return live
