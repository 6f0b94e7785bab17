"""`POST /v1/audio/speech/captioned`: speech and when each word is spoken, in one JSON answer.

The body is `/v1/audio/speech`'s; the answer is `{audio, format, sample_rate, engine, timestamps}`,
the audio whole and base64-encoded, each timestamp `{word, start_time, end_time, char_start,
char_end}` in seconds of that audio and characters of `input` (the shape Kokoro-FastAPI's
`/dev/captioned_speech` users read, with offsets added). Only an engine that times words serves it:
the times come from the model (docs/REALTIME.md, "Word timings"); for any other the answer is 400
`unsupported_timestamps`, nothing estimated. Whole, not streamed: captions are usually saved with
their audio, and a realtime session streams the same timings as `alignment` events.
"""

from __future__ import annotations

import base64
import contextlib
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..audio.output import AudioOutput
from ..session.events import AudioOut, ContextError, SegmentStarted, SpokenWord, WordsOut
from .errors import ApiError
from .json_body import read_json_object
from .rest import open_speech, output_rate
from .speech_request import parse_speech_request

log = logging.getLogger(__name__)


class InputOffsets:
    """Where each segment's text lies in the request's input: segments are the input cut in order
    (whitespace between them dropped), so each is found after the one before."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._at = 0
        self._starts: dict[int, int | None] = {}

    def segment(self, segment_id: int, segment_text: str) -> None:
        start = self.text.find(segment_text, self._at)
        self._starts[segment_id] = None if start < 0 else start
        if start >= 0:
            self._at = start + len(segment_text)

    def timestamp(self, segment_id: int, word: SpokenWord) -> dict[str, object]:
        entry: dict[str, object] = {
            "word": word.word, "start_time": round(word.start_ms / 1000.0, 3),
            "end_time": round(word.end_ms / 1000.0, 3),
        }  # fmt: skip
        start = self._starts.get(segment_id)
        if start is not None:
            entry["char_start"], entry["char_end"] = start + word.char_start, start + word.char_end
        return entry


async def captioned_speech(request: Request) -> Response:
    gw = request.app.state.gateway
    req = parse_speech_request(
        await read_json_object(request, timeout_s=gw.settings.body_timeout_s),
        max_input_chars=gw.settings.max_input_chars,
    )
    if req.stream_format == "sse":
        raise ApiError(400, "the captioned route answers whole JSON; leave stream_format out",
                       param="stream_format", code="unsupported_stream_format")  # fmt: skip
    context, slot = open_speech(request, req, timed=True)
    rate = output_rate(gw, req)
    output = AudioOutput(req.response_format, context.sample_rate, rate)
    offsets = InputOffsets(req.input)
    timestamps: list[dict[str, object]] = []
    parts: list[bytes] = []
    context.append(req.input)
    context.done()
    try:
        async with contextlib.aclosing(context.events()) as events:
            async for event in events:
                if isinstance(event, AudioOut):
                    parts.append(output.write(event.samples))
                elif isinstance(event, SegmentStarted):
                    offsets.segment(event.segment_id, event.text)
                elif isinstance(event, WordsOut):
                    timestamps += [offsets.timestamp(event.segment_id, w) for w in event.words]
                elif isinstance(event, ContextError):
                    raise ApiError(500, f"speech synthesis failed: {event.message}", code=event.code)
    finally:
        slot.close()
    if not output.samples_out:
        raise ApiError(400, "The input produced no audio: nothing in it could be spoken by this voice.",
                       param="input", code="no_speech")  # fmt: skip
    parts.append(output.finish())
    log.info("captioned speech request", extra={"engine": context.engine_name, "chars": len(req.input)})
    return JSONResponse(
        {
            "audio": base64.b64encode(b"".join(parts)).decode("ascii"),
            "format": req.response_format,
            "sample_rate": rate,
            "engine": context.engine_name,
            "degraded": context.degraded,
            "timestamps": timestamps,
        },
        headers={"X-Session-Id": context.session_id, "Cache-Control": "no-store"},
    )


routes = [Route("/v1/audio/speech/captioned", captioned_speech, methods=["POST"])]
