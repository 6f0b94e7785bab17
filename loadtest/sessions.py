"""Native WebSocket sessions (`GET /v1/realtime`, JSON mode) driven like an LLM voice agent.

Each session configures itself with `session.update`, then runs turns until the
duration is up: one paragraph streamed as `text.append` tokens (in its own
`context_id`), `text.done`, and a wait for `context.done`. Token streaming stops
early at the deadline (the turn still ends with `text.done`). Finally
`session.close`, and a wait for the server's close.

Time to first audio of a context = its first binary frame − the moment its first
clause boundary was sent (see `tokens.clause_boundary`), or `text.done` if that
came first. Binary frames belong to the context of the latest `segment.started`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from .phrasing import PhrasingStats
from .report import FrameTrace, Row, rtf
from .tokens import DEFAULT_PARAGRAPHS, clause_boundary, paced, tokenize

BYTES_PER_SAMPLE = {"pcm": 2, "mulaw": 1, "alaw": 1}


def http_base(url: str) -> str:
    """`ws://host:port/...` or `http://host:port/...` → `http://host:port` (scheme kept secure if so)."""
    url = url.rstrip("/")
    for old, new in (("ws://", "http://"), ("wss://", "https://")):
        if url.startswith(old):
            url = new + url[len(old) :]
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.split('/', 1)[0]}" if sep else url


def ws_base(url: str) -> str:
    base = http_base(url)
    return "ws" + base[4:] if base.startswith("http") else base


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


@dataclass
class ContextResult:
    """One turn: the text sent in one context and the audio that came back."""

    context_id: str
    trace: FrameTrace
    started_at: float
    tokens_sent: int = 0
    chars_sent: int = 0
    first_token_at: float | None = None
    reference_at: float | None = None
    """The first clause boundary was sent, or `text.done` if no boundary came first."""
    done_sent_at: float | None = None
    context_done_at: float | None = None
    segments: int = 0
    segment_chars: int = 0
    """Characters of the `segment.started` texts: what the server actually spoke."""
    segment_texts: list[str] = field(default_factory=list)
    """The `segment.started` texts, in order: where the server cut (`loadtest.phrasing`)."""
    interrupted: bool = False
    finished: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def ttfa_ms(self) -> float | None:
        first = self.trace.first_at
        if first is None or self.reference_at is None:
            return None
        return (first - self.reference_at) * 1e3

    def summary(self, t0: float) -> dict[str, Any]:
        late, late_ms = self.trace.underruns()
        jitter = self.trace.jitter_ms()

        def rel(t: float | None) -> float | None:
            return None if t is None else round((t - t0) * 1e3, 1)

        return {
            "context_id": self.context_id, "tokens_sent": self.tokens_sent, "chars_sent": self.chars_sent,
            "segments": self.segments, "segment_chars": self.segment_chars,
            "ttfa_ms": None if self.ttfa_ms is None else round(self.ttfa_ms, 1),
            "first_token_ms": rel(self.first_token_at), "reference_ms": rel(self.reference_at),
            "done_sent_ms": rel(self.done_sent_at), "first_audio_ms": rel(self.trace.first_at),
            "last_audio_ms": rel(self.trace.last_at), "context_done_ms": rel(self.context_done_at),
            "audio_s": round(self.trace.audio_s, 4), "frames": len(self.trace.arrivals),
            "jitter_ms": [round(v, 2) for v in jitter], "underruns": late, "late_ms": round(late_ms, 1),
            "interrupted": self.interrupted, "segment_texts": self.segment_texts,
        }  # fmt: skip


@dataclass
class WsSessionResult:
    name: str
    started_at: float
    session_id: str | None = None
    contexts: list[ContextResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""

    def row(self) -> Row:
        traces = [c.trace for c in self.contexts]
        late = [c.trace.underruns() for c in self.contexts]
        return Row(
            name=self.name, items=len(self.contexts), audio_s=sum(t.audio_s for t in traces),
            ttfa_ms=[c.ttfa_ms for c in self.contexts if c.ttfa_ms is not None],
            jitter_ms=[v for t in traces for v in t.jitter_ms()], underruns=sum(n for n, _ in late),
            late_ms=sum(ms for _, ms in late), rtf=rtf(traces), errors=len(self.errors),
        )  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return {**self.row().summary(), "name": self.name, "session_id": self.session_id, "errors": self.errors,
                "close_code": self.close_code, "close_reason": self.close_reason,
                "contexts": [c.summary(self.started_at) for c in self.contexts]}  # fmt: skip


@dataclass
class WsLoadResult:
    sessions: list[WsSessionResult]
    config: dict[str, Any]

    mode = "ws"

    def rows(self) -> list[Row]:
        return [s.row() for s in self.sessions]

    def ended_segment_texts(self) -> list[list[str]]:
        """The segment texts of each context that ended (an interrupted one has no natural last cut)."""
        return [
            c.segment_texts
            for s in self.sessions
            for c in s.contexts
            if c.context_done_at and not c.interrupted
        ]

    def phrasing(self) -> PhrasingStats:
        return PhrasingStats.of(self.ended_segment_texts())

    def aggregate(self) -> Row:
        return Row.aggregate(self.rows())

    def steady_window(self, settle_s: float = 2.0) -> tuple[float, float] | None:
        """While every session runs turns: from `settle_s` after the last one started to the moment the
        first one stopped starting turns. None if the sessions never overlapped that long."""
        if not self.sessions:
            return None
        start = max(s.started_at for s in self.sessions) + settle_s
        end = min(s.started_at for s in self.sessions) + float(self.config["duration_s"])
        return (start, end) if end > start else None

    def steady_audio_rate(self, settle_s: float = 2.0) -> float | None:
        """Audio seconds received per second, all sessions together, in the steady window: what N
        concurrent sessions ask of the engine, without the start-up ramp and the final drain."""
        window = self.steady_window(settle_s)
        if window is None:
            return None
        audio = sum(c.trace.audio_between(*window) for s in self.sessions for c in s.contexts)
        return audio / (window[1] - window[0])

    @property
    def errors(self) -> int:
        return sum(len(s.errors) for s in self.sessions)

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "config": self.config, "aggregate": self.aggregate().summary(),
                "phrasing": self.phrasing().summary(), "sessions": [s.to_json() for s in self.sessions]}  # fmt: skip


@dataclass(frozen=True)
class WsOptions:
    tokens_per_second: float = 30.0
    token_jitter: float = 0.2
    engine: str | None = None
    voice: str | None = None
    lead_ms: float = 300.0
    encoding: str = "pcm"
    sample_rate: int = 24000
    api_key: str | None = None
    drain_timeout_s: float = 60.0


class _WsClient:
    """One connection: a receive loop that records, and the turns that send."""

    def __init__(self, ws: ClientConnection, result: WsSessionResult, options: WsOptions) -> None:
        self.ws = ws
        self.result = result
        self.options = options
        self.bytes_per_second = options.sample_rate * BYTES_PER_SAMPLE[options.encoding]
        self.contexts: dict[str, ContextResult] = {}
        self.speaking: ContextResult | None = None
        self.updated = asyncio.Event()
        self.configured = False
        self.closing = False

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def receive(self) -> None:
        try:
            async for message in self.ws:
                now = time.perf_counter()
                if isinstance(message, bytes):
                    self._audio(now, message)
                else:
                    self._event(now, json.loads(message))
        except ConnectionClosed:
            pass
        except ValueError as exc:
            self.result.errors.append(f"invalid JSON from server: {exc}")
        self.result.close_code, self.result.close_reason = self.ws.close_code, self.ws.close_reason or ""
        if not self.closing or self.ws.close_code != 1000:
            self.result.errors.append(f"unexpected close {self.ws.close_code}: {self.ws.close_reason}")
        for ctx in self.contexts.values():
            ctx.finished.set()
        self.updated.set()

    def _audio(self, now: float, data: bytes) -> None:
        ctx = self.speaking
        if ctx is None:
            self.result.errors.append(f"{len(data)} bytes of audio outside any segment")
            return
        ctx.trace.add(now, len(data))

    def _event(self, now: float, event: dict[str, Any]) -> None:
        kind = event.get("type")
        ctx = self.contexts.get(str(event.get("context_id")))
        if kind in ("session.created", "session.updated"):
            self.result.session_id = event.get("session_id")
            if kind == "session.updated":
                self.configured = True
                self.updated.set()
        elif kind == "segment.started" and ctx is not None:
            self.speaking = ctx
            ctx.segments += 1
            ctx.segment_chars += len(event.get("text") or "")
            ctx.segment_texts.append(str(event.get("text") or ""))
        elif kind == "context.done" and ctx is not None:
            ctx.context_done_at = now
            ctx.finished.set()
        elif kind == "speech.interrupted" and ctx is not None:
            ctx.interrupted = True
            ctx.finished.set()
        elif kind == "error":
            self.result.errors.append(f"{event.get('code')}: {event.get('message')}")
            self.updated.set()  # a refused session.update must not hang the start

    async def configure(self) -> None:
        o = self.options
        update: dict[str, Any] = {"type": "session.update",
                                  "output": {"encoding": o.encoding, "sample_rate": o.sample_rate, "lead_ms": o.lead_ms}}  # fmt: skip
        if o.engine:
            update["engine"] = o.engine
        if o.voice:
            update["voice"] = o.voice
        await self.send(update)
        await asyncio.wait_for(self.updated.wait(), 10)

    async def turn(self, context_id: str, paragraph: str, rng: random.Random, stop_at: float) -> bool:
        """Stream one paragraph into `context_id` and wait for its end; False if it never ended."""
        ctx = ContextResult(context_id, FrameTrace(self.bytes_per_second), time.perf_counter())
        self.contexts[context_id] = ctx
        self.result.contexts.append(ctx)
        tokens = tokenize(paragraph, rng)
        boundary = clause_boundary(tokens)
        o = self.options
        async for i, token in paced(tokens, o.tokens_per_second, o.token_jitter, rng, stop_at):
            await self.send({"type": "text.append", "text": token, "context_id": context_id})
            now = time.perf_counter()
            if i == 0:
                ctx.first_token_at = now
            if i == boundary:
                ctx.reference_at = now
            ctx.tokens_sent += 1
            ctx.chars_sent += len(token)
        await self.send({"type": "text.done", "context_id": context_id})
        ctx.done_sent_at = time.perf_counter()
        if ctx.reference_at is None:
            ctx.reference_at = ctx.done_sent_at
        try:
            await asyncio.wait_for(ctx.finished.wait(), o.drain_timeout_s)
        except TimeoutError:
            self.result.errors.append(f"no context.done for {context_id} within {o.drain_timeout_s:g} s")
            return False
        return True


async def run_session(
    index: int, url: str, duration_s: float, paragraphs: Sequence[str], options: WsOptions, seed: int = 0
) -> WsSessionResult:
    """One session: configure, speak paragraphs until `duration_s` is up, close."""
    started = time.perf_counter()
    result = WsSessionResult(name=f"ws-{index}", started_at=started)
    rng = random.Random(seed * 1000 + index)
    stop_at = started + duration_s
    try:
        async with connect(f"{ws_base(url)}/v1/realtime", additional_headers=auth_headers(options.api_key),
                           open_timeout=10, max_size=None, close_timeout=5) as ws:  # fmt: skip
            client = _WsClient(ws, result, options)
            receiver = asyncio.create_task(client.receive())
            try:
                await client.configure()
                turn, ok = 0, client.configured
                while ok and time.perf_counter() < stop_at and not receiver.done():
                    paragraph = paragraphs[(index + turn) % len(paragraphs)]
                    ok = await client.turn(f"s{index}-t{turn}", paragraph, rng, stop_at)
                    turn += 1
                client.closing = True
                if not receiver.done():
                    await client.send({"type": "session.close"})
                await asyncio.wait_for(asyncio.shield(receiver), options.drain_timeout_s)
            except TimeoutError:
                result.errors.append("timed out waiting for the server")
            except ConnectionClosed:
                pass  # the receiver has recorded how and why
            finally:
                client.closing = True
                receiver.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await receiver
    except (OSError, InvalidHandshake, TimeoutError) as exc:
        result.errors.append(f"connect failed: {type(exc).__name__}: {exc}")
    return result


async def run_ws_load(
    url: str,
    *,
    sessions: int = 1,
    duration_s: float = 10.0,
    paragraphs: Sequence[str] = DEFAULT_PARAGRAPHS,
    seed: int = 0,
    ramp_up_s: float = 0.0,
    **options: Any,
) -> WsLoadResult:
    """`sessions` concurrent native sessions for `duration_s`; options are `WsOptions` fields.

    `ramp_up_s` spreads the session starts evenly over that many seconds (0: all at once).
    """
    opts = WsOptions(**options)
    if opts.encoding not in BYTES_PER_SAMPLE:
        raise ValueError(f"encoding must be one of {', '.join(BYTES_PER_SAMPLE)}")

    async def start(i: int) -> WsSessionResult:
        await asyncio.sleep(ramp_up_s * i / sessions)
        return await run_session(i, url, duration_s, paragraphs, opts, seed)

    results = await asyncio.gather(*(start(i) for i in range(sessions)))
    config = {"url": url, "sessions": sessions, "duration_s": duration_s, "seed": seed, "ramp_up_s": ramp_up_s,
              **{k: v for k, v in asdict(opts).items() if k != "api_key"}}  # fmt: skip
    return WsLoadResult(list(results), config)
