"""OpenAI-compatible REST: `/v1/audio/speech`, `/v1/models`, `/v1/audio/voices`.

A speech request becomes a short-lived speech context on the shared
scheduler: the whole input is appended at once, audio is encoded and streamed
as it is synthesized (chunked transfer, or SSE with `stream_format: "sse"`),
and a client that goes away cancels the context and its engine jobs.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import ExitStack

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..audio.output import AudioOutput
from ..control.auth import LimitExceeded, extract_key
from ..control.logs import session_id as session_id_var
from ..control.voices import UnknownModel, UnknownVoice
from ..engines.base import UnsupportedRequest
from ..engines.registry import EngineUnavailable
from ..gateway import Gateway
from ..session.context import SpeechContext
from ..session.events import AudioOut, ContextError, ContextEvent
from .errors import ApiError
from .json_body import read_json_object
from .speech_request import EXTRA_FORMATS, SpeechRequest, parse_speech_request
from .streaming import ClosingStreamingResponse

log = logging.getLogger(__name__)

CREATED = 1_700_000_000  # a fixed timestamp: models here have no creation date


def _gateway(request: Request) -> Gateway:
    return request.app.state.gateway


def open_speech(
    request: Request, req: SpeechRequest, *, timed: bool = False
) -> tuple[SpeechContext, ExitStack]:
    """A speech context for `req` and the session slot it holds (close it when done); the request's
    errors answered as OpenAI does. `timed`: the engine must time words (the captioned route)."""
    gw = _gateway(request)
    try:
        selection = gw.voices.resolve(req.model, req.voice)
    except UnknownModel as exc:
        raise ApiError(404, str(exc), param="model", code="model_not_found") from None
    except UnknownVoice as exc:
        raise ApiError(404, str(exc), param="voice", code="voice_not_found") from None
    engine = selection.engine
    try:
        engine.info.check(selection.voice, req.speed)
    except UnsupportedRequest as exc:
        raise ApiError(400, str(exc), param=exc.param, code=f"unsupported_{exc.param}") from None
    if timed and not engine.info.capabilities.timestamps:
        raise ApiError(
            400, f"engine '{selection.engine_name}' cannot time words; choose one that can (kokoro)",
            param="model", code="unsupported_timestamps",
        )  # fmt: skip
    slot = ExitStack()
    try:
        slot.enter_context(gw.limiter.acquire(extract_key(request.headers, request.query_params)))
    except LimitExceeded as exc:
        raise ApiError(429, str(exc), code="too_many_sessions") from None
    session_id = uuid.uuid4().hex[:12]
    session_id_var.set(session_id)
    # A response is often saved whole: the same input gives the same audio, however loaded the
    # server is (no pause stretched because synthesis fell behind real time).
    try:
        context = gw.new_context(
            selection,
            speed=req.speed,
            session_id=session_id,
            stretch_pauses=False,
            text_mode=req.normalize,
            ssml=req.ssml,
        )
    except EngineUnavailable as exc:
        slot.close()
        raise ApiError(503, str(exc), code="engine_not_ready") from None
    return context, slot


def output_rate(gw: Gateway, req: SpeechRequest) -> int:
    return req.sample_rate or (8000 if req.response_format in EXTRA_FORMATS else gw.settings.rest_sample_rate)


async def speech(request: Request) -> Response:
    started = time.monotonic()
    gw = _gateway(request)
    req = parse_speech_request(
        await read_json_object(request, timeout_s=gw.settings.body_timeout_s),
        max_input_chars=gw.settings.max_input_chars,
    )
    context, slot = open_speech(request, req)
    session_id = context.session_id
    rate = output_rate(gw, req)
    output = AudioOutput(req.response_format, context.sample_rate, rate)
    context.append(req.input)
    context.done()
    transport = "rest_sse" if req.stream_format == "sse" else "rest"
    gw.metrics.active_sessions.labels(transport).inc()

    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            slot.close()
            gw.metrics.active_sessions.labels(transport).dec()

    events = context.events()
    encoded = _encoded(events, output)
    try:
        # The status goes out with the first encoded bytes, never before: whatever fails or says
        # nothing until then is answered with an error, so a 200 always carries audio.
        first = await _first_bytes(encoded)
    except BaseException:
        try:
            await encoded.aclose()
            await events.aclose()
        finally:
            release()
        raise
    gw.metrics.ttfa.labels(transport, context.engine_name).observe(time.monotonic() - started)
    audio = _rest_of_audio(gw, context, first, encoded, events, output, transport)
    if req.stream_format == "sse":
        body: AsyncIterator[bytes] = _sse(audio, req, output, context)
        media_type = "text/event-stream"
    else:
        body, media_type = audio, output.content_type
    # The engine that made the first audio, and whether it is a fallback (a failover after the headers
    # went out shows in the SSE `speech.audio.done` event and the metrics, not here).
    headers = {
        "X-Session-Id": session_id, "Cache-Control": "no-store", "X-Sample-Rate": str(rate),
        "X-Engine": context.engine_name, "X-Degraded": "true" if context.degraded else "false",
    }  # fmt: skip
    log.info(
        "speech request",
        extra={"engine": context.engine_name, "voice": context.voice, "chars": len(req.input),
               "format": req.response_format, "stream": req.stream_format},
    )  # fmt: skip
    return ClosingStreamingResponse(
        body,
        media_type=media_type,
        headers=headers,
        on_close=release,
        send_timeout_s=gw.settings.send_timeout_s,
    )


async def _encoded(
    events: AsyncGenerator[ContextEvent, None], output: AudioOutput
) -> AsyncGenerator[bytes | ContextError, None]:
    """The context's audio as encoded bytes, as they come (the encoder's tail at the end); a failed
    synthesis ends it with the tail of what was encoded, then the `ContextError`. A failure before
    any audio, or an end without any, yields no tail: a container's header alone would go out as a
    200 with no speech."""
    heard = False  # any audio at all: without, a container's header must not go out (an emoji alone)
    async for event in events:
        if isinstance(event, AudioOut):
            heard = heard or event.samples.size > 0
            if data := output.write(event.samples):
                yield data
        elif isinstance(event, ContextError):
            if heard and (tail := output.finish()):
                yield tail
            yield event
            return
    if heard and (tail := output.finish()):
        yield tail


async def _first_bytes(encoded: AsyncGenerator[bytes | ContextError, None]) -> bytes:
    """The first encoded bytes; ApiError if synthesis fails or ends before any."""
    first = await anext(encoded, None)
    if isinstance(first, ContextError):
        log.error("speech failed before any audio", extra={"error": first.message})
        raise ApiError(500, f"speech synthesis failed: {first.message}", code=first.code)
    if first is None:
        raise ApiError(
            400, "The input produced no audio: nothing in it could be spoken by this voice.", param="input",
            code="no_speech",
        )  # fmt: skip
    return first


async def _rest_of_audio(
    gw: Gateway,
    context: SpeechContext,
    first: bytes,
    encoded: AsyncGenerator[bytes | ContextError, None],
    events: AsyncGenerator[ContextEvent, None],
    output: AudioOutput,
    transport: str,
) -> AsyncIterator[bytes]:
    """`first`, then the rest of the encoded audio; a failure mid-stream ends it where it stands."""
    try:
        yield first
        async for item in encoded:
            if isinstance(item, ContextError):
                gw.metrics.errors.labels(item.code).inc()
                log.error("speech stream truncated", extra={"error": item.message})
                return
            yield item
        audio_s = output.duration_s
        if audio_s > 0:
            gw.metrics.rtf.labels(context.engine_name).observe(context.stats.synth_wall_s / audio_s)
            gw.metrics.audio_seconds.labels(transport).inc(audio_s)
        gw.metrics.underruns.labels(transport).inc(context.playout.underruns)
        stats = context.stats
        gw.metrics.record_phrasing(
            transport, segments=stats.segments, mid_phrase_cuts=stats.mid_phrase_cuts,
            pause_s=stats.pause_stretch_s,
        )  # fmt: skip
    finally:
        await encoded.aclose()
        await events.aclose()


async def _sse(
    audio: AsyncIterator[bytes], req: SpeechRequest, output: AudioOutput, context: SpeechContext
) -> AsyncIterator[bytes]:
    try:
        async for chunk in audio:
            event = {"type": "speech.audio.delta", "audio": base64.b64encode(chunk).decode("ascii")}
            yield f"data: {json.dumps(event)}\n\n".encode()
        # Usage: characters in; 20 ms audio frames out (no tokenizer involved).
        usage = {"input_tokens": len(req.input), "output_tokens": math.ceil(output.duration_s * 50)}
        usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
        done = {"type": "speech.audio.done", "usage": usage, "engine": context.engine_name,
                "degraded": context.degraded}  # fmt: skip
        yield f"data: {json.dumps(done)}\n\n".encode()
    finally:
        await audio.aclose()  # type: ignore[attr-defined]


def _model(model_id: str) -> dict[str, object]:
    return {"id": model_id, "object": "model", "created": CREATED, "owned_by": "realtime-voice-gateway"}


async def list_models(request: Request) -> Response:
    ids = _gateway(request).voices.model_ids()
    return JSONResponse({"object": "list", "data": [_model(i) for i in ids]})


async def get_model(request: Request) -> Response:
    model_id = request.path_params["model_id"]
    if not _gateway(request).voices.knows_model(model_id):
        raise ApiError(404, f"The model '{model_id}' does not exist.", param="model", code="model_not_found")
    return JSONResponse(_model(model_id))


async def list_voices(request: Request) -> Response:
    """The voices of the engine that would serve `model` now (its fallback while it cannot)."""
    gw = _gateway(request)
    try:
        asked = gw.voices.engine_name(request.query_params.get("model"))
    except UnknownModel as exc:
        raise ApiError(404, str(exc), param="model", code="model_not_found") from None
    serving = gw.engines.choose(asked) or asked  # while nothing can serve it (loading): its own voices
    engine = gw.engines.info_of(serving)
    assert engine is not None
    voices = [
        {"id": v.id, "name": v.name, "engine": serving, "language": v.language} for v in engine.info.voices
    ]
    aliases = [
        {"id": name, "name": name, "engine": serving, "alias_of": gw.voices.fallback_voice(engine.info, name)}
        for name in gw.voices.openai_voice_names()
    ] if asked == gw.engines.default else []  # fmt: skip
    return JSONResponse({"voices": voices + aliases})


routes = [
    Route("/v1/audio/speech", speech, methods=["POST"]),
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{model_id:path}", get_model, methods=["GET"]),
    Route("/v1/audio/voices", list_voices, methods=["GET"]),
]
