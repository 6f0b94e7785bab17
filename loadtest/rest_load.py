"""REST load: concurrent clients looping `POST /v1/audio/speech` (pcm, streamed) for a duration.

Per request: time to the first body byte, total time, underruns of the byte
stream under real-time playback from the first byte (`report.FrameTrace`), and
errors (a non-200 status, a transport failure, an empty body).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from .report import FrameTrace, Row, rtf
from .sessions import auth_headers, http_base
from .tokens import DEFAULT_PARAGRAPHS, text_of_length


@dataclass
class RequestResult:
    started_at: float
    trace: FrameTrace
    status: int | None = None
    finished_at: float | None = None
    error: str | None = None

    @property
    def ttfa_ms(self) -> float | None:
        first = self.trace.first_at
        return None if first is None else (first - self.started_at) * 1e3

    @property
    def total_ms(self) -> float | None:
        return None if self.finished_at is None else (self.finished_at - self.started_at) * 1e3

    def summary(self, t0: float) -> dict[str, Any]:
        late, late_ms = self.trace.underruns()
        return {"started_ms": round((self.started_at - t0) * 1e3, 1), "status": self.status,
                "ttfa_ms": _r(self.ttfa_ms), "total_ms": _r(self.total_ms), "audio_s": round(self.trace.audio_s, 4),
                "chunks": len(self.trace.arrivals), "underruns": late, "late_ms": round(late_ms, 1),
                "error": self.error}  # fmt: skip


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


@dataclass
class RestClientResult:
    name: str
    started_at: float
    requests: list[RequestResult] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        return [r.error for r in self.requests if r.error]

    def row(self) -> Row:
        traces = [r.trace for r in self.requests]
        late = [t.underruns() for t in traces]
        return Row(
            name=self.name, items=len(self.requests), audio_s=sum(t.audio_s for t in traces),
            ttfa_ms=[r.ttfa_ms for r in self.requests if r.ttfa_ms is not None], jitter_ms=[],
            underruns=sum(n for n, _ in late), late_ms=sum(ms for _, ms in late),
            rtf=_mean([rtf([t]) for t in traces]), errors=len(self.errors),
        )  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        totals = [r.total_ms for r in self.requests if r.total_ms is not None]
        return {**self.row().summary(), "name": self.name, "errors": self.errors,
                "total_p50_ms": _r(sorted(totals)[len(totals) // 2]) if totals else None,
                "requests": [r.summary(self.started_at) for r in self.requests]}  # fmt: skip


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


@dataclass
class RestLoadResult:
    clients: list[RestClientResult]
    config: dict[str, Any]

    mode = "rest"

    @property
    def sessions(self) -> list[RestClientResult]:
        return self.clients

    def rows(self) -> list[Row]:
        return [c.row() for c in self.clients]

    def aggregate(self) -> Row:
        return Row.aggregate(self.rows())

    @property
    def errors(self) -> int:
        return sum(len(c.errors) for c in self.clients)

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "config": self.config, "aggregate": self.aggregate().summary(),
                "sessions": [c.to_json() for c in self.clients]}  # fmt: skip


@dataclass(frozen=True)
class RestOptions:
    engine: str | None = None
    voice: str | None = None
    api_key: str | None = None
    request_timeout_s: float = 60.0


async def _request(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> RequestResult:
    result = RequestResult(time.perf_counter(), FrameTrace(48000.0))
    try:
        async with client.stream("POST", url, json=body) as response:
            result.status = response.status_code
            if response.status_code != 200:
                text = (await response.aread()).decode(errors="replace")[:200]
                result.error = f"HTTP {response.status_code}: {text}"
                return result
            rate = int(response.headers.get("x-sample-rate", "24000"))
            result.trace.bytes_per_second = rate * 2.0
            async for chunk in response.aiter_raw():
                result.trace.add(time.perf_counter(), len(chunk))
        result.finished_at = time.perf_counter()
        if not result.trace.total_bytes:
            result.error = "empty response"
    except httpx.HTTPError as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    return result


async def _client(
    index: int, client: httpx.AsyncClient, url: str, body: dict[str, Any], stop_at: float
) -> RestClientResult:
    result = RestClientResult(f"rest-{index}", time.perf_counter())
    while time.perf_counter() < stop_at:
        request = await _request(client, url, body)
        result.requests.append(request)
        if request.error:  # a failing server answers fast: do not spin
            await asyncio.sleep(0.2)
    return result


async def run_rest_load(
    url: str,
    *,
    clients: int = 1,
    duration_s: float = 10.0,
    text: str | None = None,
    chars: int = 400,
    **options: Any,
) -> RestLoadResult:
    """`clients` concurrent request loops for `duration_s` speaking `text` (default: `chars` characters
    of the built-in paragraphs); options are `RestOptions` fields."""
    opts = RestOptions(**options)
    text = text if text is not None else text_of_length(chars, DEFAULT_PARAGRAPHS)
    body = {
        "model": opts.engine or "tts-1",
        "voice": opts.voice or "alloy",
        "input": text,
        "response_format": "pcm",
    }
    endpoint = f"{http_base(url)}/v1/audio/speech"
    stop_at = time.perf_counter() + duration_s
    timeout = httpx.Timeout(opts.request_timeout_s, connect=10.0)
    limits = httpx.Limits(max_connections=clients + 2)
    async with httpx.AsyncClient(
        timeout=timeout, limits=limits, headers=auth_headers(opts.api_key)
    ) as client:
        results = await asyncio.gather(*(_client(i, client, endpoint, body, stop_at) for i in range(clients)))
    config = {"url": url, "clients": clients, "duration_s": duration_s, "chars": len(text),
              **{k: v for k, v in asdict(opts).items() if k != "api_key"}}  # fmt: skip
    return RestLoadResult(list(results), config)
