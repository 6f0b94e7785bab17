"""Orpheus tokens from any OpenAI-compatible streaming `/v1/completions` server.

For heavy models on an existing serving engine (vLLM, llama.cpp's `llama-server`,
`python -m llama_cpp.server`): the gateway streams text completions and pulls
`<custom_token_N>` out of the text with `codes.CustomTokenParser`.

A remote server samples from the whole vocabulary, so it cannot be masked per
frame position the way the local generator is. Tokens are therefore assembled
into frames with `codes.FrameAssembler`: a token outside its position's range
breaks the frame, the partial frame is dropped and counted in
`stats.dropped_tokens`, and the next position-0 code starts a new frame. Only
complete frames are yielded (7 numbers at once), so callers get the same
guarantee as from the local generator: every number is in its position's range.

One shared `httpx.AsyncClient` keeps connections alive across requests. Closing a
stream early (end-of-speech, `max_tokens`, cancel, consumer gone) closes its
connection, which tells llama.cpp's and vLLM's servers to stop generating.

Servers differ in option names: this sends both `repeat_penalty` (llama.cpp) and
`repetition_penalty` (vLLM); put anything else in `extra_body`, e.g.
`{"skip_special_tokens": False}` for vLLM when the custom tokens are special
tokens in its tokenizer, or `{"top_k": 40}` for llama.cpp. A key set to None in
`extra_body` removes that field from the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx

from realtime.engines.base import CancelToken, EngineError
from realtime.engines.orpheus import codes
from realtime.engines.orpheus.llm import GenerationRequest, GeneratorStats

logger = logging.getLogger(__name__)

_END = object()
_CANCEL_POLL_S = 0.02


class RemoteCompletionsGenerator:
    """Streams Orpheus token numbers from a remote completions endpoint (`{base_url}/completions`)."""

    def __init__(
        self,
        base_url: str,
        *,
        model: str = "orpheus",
        api_key: str | None = None,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        max_connections: int = 64,
        max_keepalive_connections: int = 16,
        keepalive_expiry: float = 60.0,
        extra_body: dict[str, Any] | None = None,
        buffer_tokens: int = 256,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """`base_url` includes the API prefix, as in OpenAI clients: `http://host:8080/v1`.

        `timeout` bounds each read (the gap between streamed chunks), not the whole stream.
        `buffer_tokens` bounds what is read ahead of a slow consumer; beyond it the socket is
        left unread so TCP pushes back on the server.
        """
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/completions"
        self.model = model
        self.api_key = api_key
        self.timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self.limits = httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_keepalive_connections,
            keepalive_expiry=keepalive_expiry,
        )
        self.extra_body = dict(extra_body or {})
        self.buffer_tokens = max(codes.FRAME_TOKENS, buffer_tokens)
        self.stats = GeneratorStats()
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._active = 0

    @property
    def ready(self) -> bool:
        return self._client is not None

    @property
    def active_sequences(self) -> int:
        return self._active

    async def start(self) -> None:
        if self._client is not None:
            return
        headers = {"Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        self._client = httpx.AsyncClient(
            timeout=self.timeout, limits=self.limits, headers=headers, transport=self._transport
        )
        logger.info("Orpheus remote generator: %s (model %s)", self.url, self.model)

    async def stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def request_body(self, request: GenerationRequest) -> dict[str, Any]:
        """The JSON sent for `request`: OpenAI fields, both penalty spellings, then `extra_body`."""
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": request.prompt,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "repeat_penalty": request.repetition_penalty,
            "repetition_penalty": request.repetition_penalty,
            "stream": True,
        }
        if request.seed is not None:
            body["seed"] = request.seed
        body.update(self.extra_body)
        return {k: v for k, v in body.items() if v is not None}

    async def generate(self, request: GenerationRequest) -> AsyncIterator[int]:
        if self._client is None:
            raise EngineError("the Orpheus remote generator is not started")
        if request.max_tokens <= 0:
            return
        queue: asyncio.Queue[Any] = asyncio.Queue(self.buffer_tokens)
        self._active += 1
        self.stats.add(sequences_started=1)
        pump = asyncio.create_task(self._pump(self._client, request, queue))
        outcome = "cancelled"
        yielded = 0
        try:
            while yielded < request.max_tokens:
                item = await _next(queue, request.cancel)
                if item is _END:
                    outcome = "cancelled" if request.cancel.cancelled else "completed"
                    break
                if isinstance(item, BaseException):
                    outcome = "failed"
                    raise item
                yielded += 1
                self.stats.add(tokens_generated=1)
                yield item
            else:
                outcome = "completed"
        finally:
            self._active -= 1
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            self.stats.add(**{f"sequences_{outcome}": 1})

    async def _pump(
        self, client: httpx.AsyncClient, request: GenerationRequest, queue: asyncio.Queue[Any]
    ) -> None:
        """Read the SSE stream into `queue` as whole frames; ends with `_END` or an EngineError."""
        parser = codes.CustomTokenParser()
        frames = codes.FrameAssembler()
        try:
            async with client.stream("POST", self.url, json=self.request_body(request)) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise EngineError(_http_error(self.url, response))
                async for data in _sse_data(response):
                    if request.cancel.cancelled:
                        break
                    chunk = json.loads(data)
                    if not isinstance(chunk, dict):
                        continue
                    if "error" in chunk:
                        raise EngineError(
                            f"completions server {self.url} failed mid-stream: {_message(chunk)}"
                        )
                    usage = chunk.get("usage") or {}
                    if usage.get("prompt_tokens"):
                        self.stats.add(prompt_tokens=int(usage["prompt_tokens"]))
                    text = "".join(choice.get("text") or "" for choice in chunk.get("choices") or [])
                    if await _push(parser.feed(text), frames, queue, self.stats):
                        break
            self.stats.add(dropped_tokens=frames.position)
            await queue.put(_END)
        except asyncio.CancelledError:
            raise
        except EngineError as exc:
            await queue.put(exc)
        except httpx.ConnectError as exc:
            await queue.put(EngineError(f"cannot reach completions server at {self.url}: {exc}"))
        except httpx.TimeoutException as exc:
            await queue.put(EngineError(f"completions server {self.url} timed out ({type(exc).__name__})"))
        except (httpx.HTTPError, ValueError) as exc:
            await queue.put(EngineError(f"completions stream from {self.url} broke: {exc!r}"))


async def _push(
    numbers: list[int], frames: codes.FrameAssembler, queue: asyncio.Queue[Any], stats: GeneratorStats
) -> bool:
    """Queue the codes of every frame `numbers` completes; True at end-of-speech."""
    for number in numbers:
        if number == codes.END_OF_SPEECH:
            return True
        dropped = frames.dropped_tokens
        frame = frames.push(number)
        if frames.dropped_tokens != dropped:
            stats.add(dropped_tokens=frames.dropped_tokens - dropped)
        if frame is not None:
            for position, code in enumerate(frame):
                await queue.put(codes.token_number(position, code))
    return False


async def _next(queue: asyncio.Queue[Any], cancel: CancelToken) -> Any:
    """The next queue item, or `_END` soon after `cancel` is set (CancelToken cannot wake us)."""
    getter = asyncio.ensure_future(queue.get())
    try:
        while not getter.done():
            if cancel.cancelled:
                return _END
            await asyncio.wait({getter}, timeout=_CANCEL_POLL_S)
        return getter.result()
    finally:
        getter.cancel()


async def _sse_data(response: httpx.Response) -> AsyncIterator[str]:
    """The `data:` payloads of a server-sent event stream, up to `[DONE]`."""
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue  # comments (": ping"), event names, blank separators
        data = line[5:].strip()
        if data == "[DONE]":
            return
        if data:
            yield data


def _message(payload: Any) -> str:
    """The human part of an error body: OpenAI `{"error": {"message"}}`, FastAPI `{"detail"}`, or text."""
    if isinstance(payload, dict):
        error = payload.get("error", payload.get("detail", payload.get("message")))
        if isinstance(error, dict):
            return str(error.get("message") or error)
        if error is not None:
            return error if isinstance(error, str) else json.dumps(error)
    return str(payload)


def _http_error(url: str, response: httpx.Response) -> str:
    try:
        message = _message(response.json())
    except ValueError:
        message = response.text.strip()[:500]
    return f"completions server {url} answered {response.status_code} {response.reason_phrase}: {message}"
