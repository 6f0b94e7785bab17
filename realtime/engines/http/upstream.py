"""One upstream speech server (a URL) and the balancing between copies of it.

Each URL has its own keep-alive `httpx.AsyncClient`, so connections are reused across requests and
one slow machine does not hold another's connections. A request's HTTP I/O runs in a pump task that
hands reads to the caller through a small queue: the caller can then give up at any moment (its job
cancelled, a deadline passed, its consumer gone) by cancelling the pump, which leaves `client.stream`
and closes the connection mid-body. The server sees the disconnect at once and can stop
synthesizing. The queue is bounded, so a slow consumer leaves the socket unread and TCP pushes back.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import httpx

from ..base import CancelToken, EngineError
from .settings import HttpUpstreamSettings

QUEUE_READS = 16
"""Reads (up to 64 KiB each) held for a consumer that lags before the socket is left unread."""
CANCEL_POLL_S = 0.02
"""How often a waiting request looks at its job's cancel token (a thread-safe flag cannot wake it)."""
ERROR_BODY_BYTES = 4096
"""Of an error answer, this much is read for its message; the rest is dropped with the connection."""

_END = object()
_CANCELLED = object()
_TIMED_OUT = object()


class UpstreamError(EngineError):
    """An upstream failed a request: it answered an error, timed out, or broke off mid-stream."""

    status: int | None = None
    """The upstream's HTTP status when it answered one."""


class UpstreamUnreachable(UpstreamError):
    """No connection could be made: nothing reached the server, so another URL may take the request."""


class Upstream:
    """One URL: its client, and the requests in flight to it."""

    def __init__(
        self,
        url: str,
        config: HttpUpstreamSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url
        self.speech_url = f"{url}/audio/speech"
        self.config = config
        self.outstanding = 0
        """Requests sent and not finished: what balancing compares."""
        self.requests = 0
        self.down_until = 0.0
        self._clock = clock
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._closing: set[asyncio.Task[None]] = set()
        """Pumps still closing their connection after their caller left (held: the loop keeps
        only weak references to tasks)."""

    def usable(self) -> bool:
        """False while a refused connection keeps it out of rotation (`down_s`)."""
        return self._clock() >= self.down_until

    def mark_down(self) -> None:
        self.down_until = self._clock() + self.config.down_s

    async def open(self) -> None:
        if self._client is not None:
            return
        config = self.config
        # Audio does not compress: identity encoding spares both sides a codec, and reads stay raw.
        headers = {"Accept-Encoding": "identity"}
        if config.api_key:
            headers["Authorization"] = f"Bearer {config.api_key}"
        self._client = httpx.AsyncClient(
            headers=headers,
            # Reads are timed by the caller (first byte, then stalls), not by httpx.
            timeout=httpx.Timeout(None, connect=config.connect_timeout_s, write=config.stall_timeout_s),
            limits=httpx.Limits(
                max_connections=config.max_concurrency + 2,  # the probe and a request passed on by failover
                max_keepalive_connections=config.max_concurrency,
                keepalive_expiry=60.0,
            ),
            transport=self._transport,
        )

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _require_client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise EngineError(f"upstream {self.url} is not open")
        return self._client

    async def voices(self, model: str) -> Any | None:
        """The JSON of `GET {url}/audio/voices?model=`: None if the server has no such endpoint.
        Raises `UpstreamError` if it cannot be reached or fails (it may still be loading)."""
        url = f"{self.url}/audio/voices"
        try:
            response = await self._require_client().get(
                url,
                params={"model": model},
                timeout=httpx.Timeout(
                    self.config.first_byte_timeout_s, connect=self.config.connect_timeout_s
                ),
            )
        except httpx.HTTPError as exc:
            raise _transport_error(url, exc) from None
        if response.status_code in (404, 405):
            return None
        if response.status_code != 200:
            raise _status_error(url, response.status_code, response.reason_phrase, response.content)
        try:
            return response.json()
        except ValueError:
            return None

    async def speech(self, body: dict[str, Any], cancel: CancelToken) -> AsyncIterator[bytes]:
        """The audio bytes of one `/audio/speech` request as they arrive. Ends early, closing the
        request, once `cancel` is set or the caller closes it; `UpstreamError` on a failure."""
        client = self._require_client()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue(QUEUE_READS)
        self.outstanding += 1
        self.requests += 1
        pump = loop.create_task(self._pump(client, body, queue))
        first = True
        try:
            while True:
                wait_s = self.config.first_byte_timeout_s if first else self.config.stall_timeout_s
                item = await _next(queue, cancel, loop.time() + wait_s)
                if item is _END or item is _CANCELLED:
                    return
                if item is _TIMED_OUT:
                    raise UpstreamError(
                        f"upstream {self.speech_url} sent no audio within {wait_s:g} s"
                        if first
                        else f"upstream {self.speech_url} stalled: nothing for {wait_s:g} s mid-stream"
                    )
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, bytes)
                first = False
                yield item
        finally:
            self.outstanding -= 1
            if not pump.done():
                pump.cancel()
                await self._closed(pump)

    async def _closed(self, pump: asyncio.Task[None]) -> None:
        """Wait for a cancelled pump to close its connection. Shielded: a session cancels its job's
        task more than once, and a second cancel reaching the pump while httpcore closes the
        connection would leave it open, and the server streaming to nobody."""
        self._closing.add(pump)
        pump.add_done_callback(self._closing.discard)
        try:
            await asyncio.shield(pump)
        except asyncio.CancelledError:
            if not pump.done():
                raise  # this task was cancelled again: the pump finishes closing on its own

    async def _pump(
        self, client: httpx.AsyncClient, body: dict[str, Any], queue: asyncio.Queue[object]
    ) -> None:
        """One request: its reads into `queue`, then `_END`, or the `UpstreamError` that ended it."""
        url = self.speech_url
        try:
            async with client.stream("POST", url, json=body) as response:
                if response.status_code != 200:
                    content = await _head(response, ERROR_BODY_BYTES)
                    raise _status_error(url, response.status_code, response.reason_phrase, content)
                self._check_format(response)
                async for data in response.aiter_bytes():
                    if data:
                        await queue.put(data)
            await queue.put(_END)
        except asyncio.CancelledError:
            raise
        except UpstreamError as exc:
            await queue.put(exc)
        except httpx.HTTPError as exc:
            await queue.put(_transport_error(url, exc))

    def _check_format(self, response: httpx.Response) -> None:
        """Refuse an answer that is not the raw PCM asked for: it would play as noise."""
        content_type = response.headers.get("content-type", "")
        if content_type.startswith(("application/json", "text/")):
            raise UpstreamError(f"upstream {self.speech_url} answered {content_type}, not pcm audio")
        rate = response.headers.get("x-sample-rate")
        if rate and rate.isdigit() and int(rate) != self.config.sample_rate:
            raise UpstreamError(
                f"upstream {self.speech_url} streams {rate} Hz pcm, but the engine is set to "
                f"sample_rate {self.config.sample_rate}"
            )


class Balancer:
    """Least outstanding requests across URLs, round robin among equals, URLs marked down last."""

    def __init__(self, upstreams: Sequence[Upstream]) -> None:
        if not upstreams:
            raise ValueError("no upstream URLs")
        self.upstreams = list(upstreams)
        self._turn = 0

    def pick(self, exclude: Sequence[Upstream] = ()) -> Upstream | None:
        """The URL for the next request, never one in `exclude`; None when all are excluded. A URL
        marked down is chosen only when every other one is down too (it may be back by now)."""
        candidates = [u for u in self.upstreams if u not in exclude]
        if not candidates:
            return None
        candidates = [u for u in candidates if u.usable()] or candidates
        least = min(u.outstanding for u in candidates)
        tied = [u for u in candidates if u.outstanding == least]
        self._turn += 1
        return tied[self._turn % len(tied)]


async def _next(queue: asyncio.Queue[object], cancel: CancelToken, deadline: float) -> object:
    """The next item, `_CANCELLED` soon after `cancel` is set, or `_TIMED_OUT` at `deadline` (loop time)."""
    if not queue.empty():
        return queue.get_nowait()
    loop = asyncio.get_running_loop()
    getter = asyncio.ensure_future(queue.get())
    try:
        while not getter.done():
            if cancel.cancelled:
                return _CANCELLED
            remaining = deadline - loop.time()
            if remaining <= 0:
                return _TIMED_OUT
            await asyncio.wait({getter}, timeout=min(CANCEL_POLL_S, remaining))
        return getter.result()
    finally:
        getter.cancel()


async def _head(response: httpx.Response, limit: int) -> bytes:
    """Up to `limit` bytes of a body, without reading the rest."""
    content = b""
    async for data in response.aiter_bytes():
        content += data
        if len(content) >= limit:
            break
    return content[:limit]


def _status_error(url: str, status: int, reason: str, content: bytes) -> UpstreamError:
    message = _message(content)
    error = UpstreamError(f"upstream {url} answered {status} {reason}" + (f": {message}" if message else ""))
    error.status = status
    return error


def _transport_error(url: str, exc: httpx.HTTPError) -> UpstreamError:
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        return UpstreamUnreachable(f"cannot reach upstream {url}: {detail}")
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamError(f"upstream {url} timed out ({type(exc).__name__})")
    return UpstreamError(f"the stream from upstream {url} broke: {detail}")


def _message(content: bytes) -> str:
    """The human part of an error body: OpenAI's `{"error": {"message"}}`, FastAPI's `{"detail"}`
    (Kokoro-FastAPI nests `{"detail": {"message"}}`), or the text itself."""
    text = content.decode("utf-8", errors="replace").strip()
    try:
        payload = json.loads(text)
    except ValueError:
        return text[:500]
    if isinstance(payload, dict):
        error = payload.get("error", payload.get("detail", payload.get("message")))
        if isinstance(error, dict):
            error = error.get("message") or error
        if isinstance(error, str):
            return error[:500]
        if error is not None:
            return json.dumps(error)[:500]
    return text[:500]
