"""`POST /v1/audio/speech/captioned`: speech and when each word is spoken, in one JSON answer.

The body is `/v1/audio/speech`'s; the answer is `{audio, format, sample_rate, engine, degraded,
timestamps}`, the audio whole and base64-encoded, each timestamp `{word, start_time, end_time,
char_start, char_end}` in seconds of that audio and characters of `input` (the shape Kokoro-FastAPI's
`/dev/captioned_speech` users read, with offsets added). With `"stream": true` it comes as NDJSON
instead, one line per piece of encoded audio with the words timed before it (`_lines`). Only an
engine that times words serves it: the times come from the model (docs/REALTIME.md, "Word
timings"); for any other the answer is 400 `unsupported_timestamps`, nothing estimated.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..audio.output import AudioOutput
from ..session.context import SpeechContext
from ..session.events import AudioOut, ContextError, ContextEvent, SegmentStarted, SpokenWord, WordsOut
from .errors import ApiError
from .json_body import read_json_object
from .rest import open_speech, output_rate
from .speech_request import parse_speech_request
from .streaming import ClosingStreamingResponse

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


class _Failed(Exception):
    def __init__(self, error: ContextError) -> None:
        super().__init__(error.message)
        self.error = error


Part = tuple[bytes, list[dict[str, object]], bool]
"""Encoded audio, the words placed since the last part, and whether it is the last part."""


async def _parts(
    events: AsyncIterator[ContextEvent], output: AudioOutput, offsets: InputOffsets
) -> AsyncIterator[Part]:
    """The context's audio as it is encoded, each piece with the words timed before it; `_Failed`
    if synthesis fails."""
    words: list[dict[str, object]] = []
    async for event in events:
        if isinstance(event, AudioOut):
            if data := output.write(event.samples):
                yield data, words, False
                words = []
        elif isinstance(event, SegmentStarted):
            offsets.segment(event.segment_id, event.text)
        elif isinstance(event, WordsOut):
            words += [offsets.timestamp(event.segment_id, w) for w in event.words]
        elif isinstance(event, ContextError):
            raise _Failed(event)
    yield output.finish(), words, True


def _failed(error: ContextError) -> ApiError:
    return ApiError(500, f"speech synthesis failed: {error.message}", code=error.code)


def _no_speech() -> ApiError:
    return ApiError(400, "The input produced no audio: nothing in it could be spoken by this voice.",
                    param="input", code="no_speech")  # fmt: skip


async def captioned_speech(request: Request) -> Response:
    gw = request.app.state.gateway
    body = await read_json_object(request, timeout_s=gw.settings.body_timeout_s)
    req = parse_speech_request(body, max_input_chars=gw.settings.max_input_chars)
    if req.stream_format == "sse":
        raise ApiError(400, "the captioned route answers JSON (or NDJSON with stream: true); leave stream_format out",
                       param="stream_format", code="unsupported_stream_format")  # fmt: skip
    stream = body.get("stream") is True
    context, slot = open_speech(request, req, timed=True)
    output = AudioOutput(req.response_format, context.sample_rate, output_rate(gw, req))
    offsets = InputOffsets(req.input)
    context.append(req.input)
    context.done()
    events = context.events()
    parts = _parts(events, output, offsets)
    headers = {"X-Session-Id": context.session_id, "Cache-Control": "no-store"}
    log.info("captioned speech request", extra={"engine": context.engine_name, "chars": len(req.input),
                                                "stream": stream})  # fmt: skip
    if not stream:
        try:
            collected = [part async for part in parts]
        except _Failed as exc:
            raise _failed(exc.error) from None
        finally:
            await events.aclose()
            slot.close()
        if not output.samples_out:
            raise _no_speech()
        return JSONResponse(
            {
                "audio": base64.b64encode(b"".join(data for data, _, _ in collected)).decode("ascii"),
                "format": req.response_format, "sample_rate": output.sample_rate, "engine": context.engine_name,
                "degraded": context.degraded, "timestamps": [w for _, words, _ in collected for w in words],
            },
            headers=headers,
        )  # fmt: skip
    try:  # the status goes out with the first audio: a failure before it is answered as an error
        first = await anext(parts)
        if first[2] and not output.samples_out:
            raise _no_speech()
    except BaseException as exc:
        await parts.aclose()
        await events.aclose()
        slot.close()
        if isinstance(exc, _Failed):
            raise _failed(exc.error) from None
        raise
    return ClosingStreamingResponse(
        _lines(first, parts, events, req.response_format, context), media_type="application/x-ndjson",
        headers=headers, on_close=slot.close, send_timeout_s=gw.settings.send_timeout_s,
    )  # fmt: skip


async def _lines(
    first: Part,
    parts: AsyncIterator[Part],
    events: AsyncIterator[ContextEvent],
    fmt: str,
    context: SpeechContext,
) -> AsyncIterator[bytes]:
    """One JSON line per piece of audio, as Kokoro-FastAPI streams captioned speech: `audio` (base64,
    the pieces concatenated are the whole file), `format`, the `timestamps` placed since the last line;
    the last line adds `done`, `engine` and `degraded`. A failure mid-stream ends it with an `error` line."""
    try:
        part: Part | None = first
        while part is not None:
            data, words, last = part
            line: dict[str, object] = {"audio": base64.b64encode(data).decode("ascii"), "format": fmt,
                                       "timestamps": words}  # fmt: skip
            if last:
                line.update(done=True, engine=context.engine_name, degraded=context.degraded)
            yield (json.dumps(line) + "\n").encode()
            part = None if last else await anext(parts)
    except _Failed as exc:
        error = {"message": exc.error.message, "type": "server_error", "code": exc.error.code}
        yield (json.dumps({"error": error}) + "\n").encode()
    finally:
        await parts.aclose()  # type: ignore[attr-defined]
        await events.aclose()  # type: ignore[attr-defined]


routes = [Route("/v1/audio/speech/captioned", captioned_speech, methods=["POST"])]
