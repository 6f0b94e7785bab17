"""Orpheus-FastAPI's legacy `POST /speak`, for the scripts written against it.

Orpheus-FastAPI (github.com/Lex-au/Orpheus-FastAPI, `app.py`) takes `{"text", "voice"}`,
writes the whole utterance to `outputs/{voice}_{timestamp}.wav` (24 kHz, 16-bit mono) and
answers `{"status": "ok", "voice", "output_file", "generation_time"}`; clients then fetch
the file from the static `/outputs/` mount. Errors are `{"error": "..."}` (400 for a
missing text). An unknown voice falls back to the default one.

Here the request goes through the same path as every other (a speech context on the
shared scheduler, limits, failover), with the voice looked up on the default engine, then
on any loaded engine that has it (`tara` finds Orpheus when it is loaded). The file is kept
in memory, not on disk: the newest `MAX_FILES` for `KEEP_S`, served at `GET /outputs/{name}`.
The answer adds `engine` and `degraded`.
"""

from __future__ import annotations

import contextlib
import io
import secrets
import time
import wave
from collections import OrderedDict
from datetime import datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..audio.output import AudioOutput
from ..control.auth import LimitExceeded, extract_key
from ..control.voices import Selection, UnknownModel, UnknownVoice
from ..engines.registry import EngineUnavailable
from ..gateway import Gateway
from ..session.events import AudioOut, ContextError
from .errors import ApiError
from .json_body import read_json_object
from .speech_request import parse_speech_request

SAMPLE_RATE = 24000
"""Orpheus-FastAPI's output rate, whatever engine speaks."""
MAX_FILES = 64
KEEP_S = 900.0


class OutputFiles:
    """The latest WAV files made by `/speak`, newest last; old ones expire."""

    def __init__(self, max_files: int = MAX_FILES, keep_s: float = KEEP_S) -> None:
        self.max_files = max_files
        self.keep_s = keep_s
        self._files: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def add(self, name: str, data: bytes) -> None:
        self._files[name] = (time.monotonic(), data)
        self._expire()

    def get(self, name: str) -> bytes | None:
        self._expire()
        entry = self._files.get(name)
        return None if entry is None else entry[1]

    def _expire(self) -> None:
        now = time.monotonic()
        while self._files and (
            len(self._files) > self.max_files or now - next(iter(self._files.values()))[0] > self.keep_s
        ):
            self._files.popitem(last=False)

    @classmethod
    def of(cls, request: Request) -> OutputFiles:
        files = getattr(request.app.state, "orpheus_outputs", None)
        if files is None:
            files = request.app.state.orpheus_outputs = cls()
        return files  # type: ignore[no-any-return]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _selection(gw: Gateway, voice: str | None) -> Selection:
    """The voice on the default engine, else on a loaded engine that has it, else the default voice."""
    try:
        return gw.voices.resolve(None, voice)
    except UnknownVoice:
        for name in gw.voices.loaded():
            engine = gw.engines.engines[name]
            if voice is not None and engine.info.has_voice(voice):
                return Selection(engine, voice, name)
        return gw.voices.resolve(None, None)


def _wav(pcm: bytes) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(pcm)
    return out.getvalue()


async def speak(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    body = await read_json_object(request, timeout_s=gw.settings.body_timeout_s)
    text, voice = body.get("text"), body.get("voice")
    if not text or not isinstance(text, str):
        return _error(400, "Missing 'text'")
    if voice is not None and not isinstance(voice, str):
        return _error(400, "'voice' must be a string")
    try:  # the same checks as /v1/audio/speech: cleaned text, length, something to say
        text = parse_speech_request(
            {"model": "tts-1", "input": text, "voice": voice or "alloy"},
            max_input_chars=gw.settings.max_input_chars,
        ).input
        selection = _selection(gw, voice)
    except ApiError as exc:
        return _error(exc.status, exc.message)
    except UnknownModel as exc:
        return _error(404, str(exc))
    started = time.monotonic()
    try:
        with gw.limiter.acquire(extract_key(request.headers, request.query_params)):
            context = gw.new_context(selection)
            context.append(text)
            context.done()
            output = AudioOutput("pcm", context.sample_rate, SAMPLE_RATE)
            pcm = bytearray()
            async with contextlib.aclosing(context.events()) as events:
                async for event in events:
                    if isinstance(event, AudioOut):
                        pcm += output.write(event.samples)
                    elif isinstance(event, ContextError):
                        return _error(500, f"speech synthesis failed: {event.message}")
            pcm += output.finish()
    except LimitExceeded as exc:
        return _error(429, str(exc))
    except EngineUnavailable as exc:
        return _error(503, str(exc))
    name = f"{context.voice}_{datetime.now().strftime('%Y%m%d_%H%M%S')}_{secrets.token_hex(3)}.wav"
    OutputFiles.of(request).add(name, _wav(bytes(pcm)))
    return JSONResponse({
        "status": "ok", "voice": context.voice, "output_file": f"outputs/{name}",
        "generation_time": round(time.monotonic() - started, 2), "engine": context.engine_name,
        "degraded": context.degraded,
    })  # fmt: skip


async def output_file(request: Request) -> Response:
    data = OutputFiles.of(request).get(request.path_params["name"])
    if data is None:
        return _error(404, "Not Found")
    return Response(data, media_type="audio/wav")


routes = [
    Route("/speak", speak, methods=["POST"]),
    Route("/outputs/{name}", output_file, methods=["GET"]),
]
