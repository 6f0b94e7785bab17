"""Twilio Media Streams load: emulated calls on `/v1/telephony/twilio`, text via the session API.

Each call sends what Twilio sends (`connected`, `start` with `customParameters`
`session_id`/`engine`/`voice`, a `media` frame of 160 bytes of μ-law silence
every 20 ms in real time, finally `stop`; all numbers as strings). Its text
goes to `POST /v1/sessions/{session_id}/text` as one utterance per turn
(`done: true`, retried on 404 until the session exists); the next turn starts
after that utterance's `mark`.

Per utterance: TTFA = first non-silent outbound `media` frame − the time the
accepted POST was sent; pacing jitter = |arrival interval − 20 ms| between
consecutive outbound frames of the utterance; underruns as in `report`. Per
call: payloads that do not decode to exactly 160 bytes, marks received vs.
utterances sent, `clear`s, errors.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from .report import FrameTrace, Row, rtf
from .sessions import auth_headers, http_base, ws_base
from .tokens import DEFAULT_PARAGRAPHS

FRAME_BYTES = 160
FRAME_S = 0.02
MULAW_SILENCE = frozenset({0xFF, 0x7F})
SILENCE_B64 = base64.b64encode(bytes([0xFF]) * FRAME_BYTES).decode("ascii")


@dataclass
class UtteranceResult:
    context_id: str
    chars: int
    trace: FrameTrace
    posted_at: float | None = None
    accepted_at: float | None = None
    first_audio_at: float | None = None
    mark_at: float | None = None
    cleared: bool = False
    finished: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def ttfa_ms(self) -> float | None:
        if self.first_audio_at is None or self.posted_at is None:
            return None
        return (self.first_audio_at - self.posted_at) * 1e3

    def summary(self, t0: float) -> dict[str, Any]:
        late, late_ms = self.trace.underruns()

        def rel(t: float | None) -> float | None:
            return None if t is None else round((t - t0) * 1e3, 1)

        return {"context_id": self.context_id, "chars": self.chars,
                "ttfa_ms": None if self.ttfa_ms is None else round(self.ttfa_ms, 1),
                "posted_ms": rel(self.posted_at), "accepted_ms": rel(self.accepted_at),
                "first_audio_ms": rel(self.first_audio_at), "mark_ms": rel(self.mark_at), "cleared": self.cleared,
                "frames": len(self.trace.arrivals), "audio_s": round(self.trace.audio_s, 3),
                "jitter_ms": [round(v, 2) for v in self.trace.jitter_ms()], "underruns": late,
                "late_ms": round(late_ms, 1)}  # fmt: skip


@dataclass
class TwilioCallResult:
    name: str
    started_at: float
    session_id: str
    stream_sid: str
    utterances: list[UtteranceResult] = field(default_factory=list)
    marks: list[str] = field(default_factory=list)
    clears: int = 0
    bad_frames: int = 0
    stray_frames: int = 0
    """Outbound media while no utterance was waiting for its mark."""
    media_sent: int = 0
    errors: list[str] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""

    @property
    def marks_matched(self) -> int:
        return sum(1 for u in self.utterances if u.mark_at is not None)

    def row(self) -> Row:
        traces = [u.trace for u in self.utterances]
        late = [t.underruns() for t in traces]
        notes = f"marks {self.marks_matched}/{len(self.utterances)}, bad frames {self.bad_frames}"
        return Row(
            name=self.name, items=len(self.utterances), audio_s=sum(t.audio_s for t in traces),
            ttfa_ms=[u.ttfa_ms for u in self.utterances if u.ttfa_ms is not None],
            jitter_ms=[v for t in traces for v in t.jitter_ms()], underruns=sum(n for n, _ in late),
            late_ms=sum(ms for _, ms in late), rtf=rtf(traces), errors=len(self.errors), notes=notes,
        )  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return {**self.row().summary(), "name": self.name, "session_id": self.session_id, "stream_sid": self.stream_sid,
                "errors": self.errors, "close_code": self.close_code, "close_reason": self.close_reason,
                "marks_received": len(self.marks), "marks_matched": self.marks_matched,
                "utterances_sent": len(self.utterances), "clears": self.clears, "bad_frames": self.bad_frames,
                "stray_frames": self.stray_frames, "media_sent": self.media_sent,
                "utterances": [u.summary(self.started_at) for u in self.utterances]}  # fmt: skip


@dataclass
class TwilioLoadResult:
    calls: list[TwilioCallResult]
    config: dict[str, Any]

    mode = "twilio"

    @property
    def sessions(self) -> list[TwilioCallResult]:
        return self.calls

    def rows(self) -> list[Row]:
        return [c.row() for c in self.calls]

    def aggregate(self) -> Row:
        rows = self.rows()
        matched, sent = sum(c.marks_matched for c in self.calls), sum(len(c.utterances) for c in self.calls)
        return Row.aggregate(
            rows, notes=f"marks {matched}/{sent}, bad frames {sum(c.bad_frames for c in self.calls)}"
        )

    @property
    def errors(self) -> int:
        return sum(len(c.errors) for c in self.calls)

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "config": self.config, "aggregate": self.aggregate().summary(),
                "sessions": [c.to_json() for c in self.calls]}  # fmt: skip


@dataclass(frozen=True)
class TwilioOptions:
    engine: str | None = None
    voice: str | None = None
    api_key: str | None = None
    drain_timeout_s: float = 60.0
    session_wait_s: float = 5.0
    """How long a 404 from the session API is retried after `start`."""


def _message(event: str, stream_sid: str, seq: int, **body: Any) -> str:
    return json.dumps({"event": event, "sequenceNumber": str(seq), **body, "streamSid": stream_sid})


class _Call:
    def __init__(self, ws: ClientConnection, result: TwilioCallResult, options: TwilioOptions) -> None:
        self.ws = ws
        self.result = result
        self.options = options
        self.current: UtteranceResult | None = None
        self.seq = 1
        self.stopping = False
        self.sids = {"accountSid": "AC" + secrets.token_hex(16), "callSid": "CA" + secrets.token_hex(16)}

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    async def start(self) -> None:
        r, o = self.result, self.options
        params = {
            "session_id": r.session_id,
            **{k: v for k, v in (("engine", o.engine), ("voice", o.voice)) if v},
        }
        start = {"streamSid": r.stream_sid, **self.sids, "tracks": ["inbound"],
                 "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                 "customParameters": params}  # fmt: skip
        await self.ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await self.ws.send(_message("start", r.stream_sid, 1, start=start))

    async def uplink(self) -> None:
        """160 bytes of μ-law silence every 20 ms of real time, on an absolute schedule."""
        t0 = time.perf_counter()
        chunk = 0
        with contextlib.suppress(ConnectionClosed):
            while not self.stopping:
                media = {"track": "inbound", "chunk": str(chunk + 1), "timestamp": str(chunk * 20),
                         "payload": SILENCE_B64}  # fmt: skip
                await self.ws.send(_message("media", self.result.stream_sid, self.next_seq(), media=media))
                self.result.media_sent += 1
                chunk += 1
                await asyncio.sleep(max(0.0, t0 + chunk * FRAME_S - time.perf_counter()))

    async def receive(self) -> None:
        r = self.result
        with contextlib.suppress(ConnectionClosed):
            async for message in self.ws:
                now = time.perf_counter()
                try:
                    event = json.loads(message)
                    self._event(now, event)
                except (ValueError, TypeError, KeyError, AttributeError, binascii.Error) as exc:
                    r.errors.append(f"bad message from server: {type(exc).__name__}: {str(message)[:80]}")
        r.close_code, r.close_reason = self.ws.close_code, self.ws.close_reason or ""
        if not self.stopping:
            r.errors.append(f"unexpected close {self.ws.close_code}: {self.ws.close_reason}")
        for utterance in r.utterances:
            utterance.finished.set()

    def _event(self, now: float, event: dict[str, Any]) -> None:
        r = self.result
        kind = event["event"]
        if event.get("streamSid") != r.stream_sid:
            r.errors.append(f"{kind} event for streamSid {event.get('streamSid')!r}")
        if kind == "media":
            payload = base64.b64decode(event["media"]["payload"], validate=True)
            if len(payload) != FRAME_BYTES:
                r.bad_frames += 1
            u = self.current
            if u is None or u.finished.is_set():
                r.stray_frames += 1
                return
            u.trace.add(now, len(payload))
            if u.first_audio_at is None and not MULAW_SILENCE.issuperset(payload):
                u.first_audio_at = now
        elif kind == "mark":
            name = event["mark"]["name"]
            r.marks.append(name)
            for u in r.utterances:
                if u.context_id == name and u.mark_at is None:
                    u.mark_at = now
                    u.finished.set()
        elif kind == "clear":
            r.clears += 1
            if self.current is not None:
                self.current.cleared = True
                self.current.finished.set()

    async def utter(self, http: httpx.AsyncClient, context_id: str, text: str) -> bool:
        """Post one utterance and wait for its mark; False if the call cannot go on."""
        r, o = self.result, self.options
        u = UtteranceResult(context_id, len(text), FrameTrace(8000.0))
        r.utterances.append(u)
        self.current = u
        body = {"text": text, "context_id": context_id, "done": True}
        give_up = time.perf_counter() + o.session_wait_s
        while True:
            u.posted_at = time.perf_counter()
            try:
                response = await http.post(f"/v1/sessions/{r.session_id}/text", json=body)
            except httpx.HTTPError as exc:
                r.errors.append(f"POST text: {type(exc).__name__}: {exc}")
                return False
            if response.status_code == 404 and time.perf_counter() < give_up:
                await asyncio.sleep(0.05)
                continue
            break
        u.accepted_at = time.perf_counter()
        if response.status_code != 200:
            r.errors.append(f"POST text: HTTP {response.status_code}: {response.text[:200]}")
            return False
        try:
            await asyncio.wait_for(u.finished.wait(), o.drain_timeout_s)
        except TimeoutError:
            r.errors.append(f"no mark for {context_id} within {o.drain_timeout_s:g} s")
            return False
        return u.mark_at is not None or u.cleared


async def run_call(
    index: int, url: str, duration_s: float, paragraphs: Sequence[str], options: TwilioOptions
) -> TwilioCallResult:
    """One call: start, utterances until `duration_s` is up, stop."""
    started = time.perf_counter()
    tag = secrets.token_hex(4)
    result = TwilioCallResult(f"twilio-{index}", started, f"lt-{tag}-{index}", "MZ" + secrets.token_hex(16))
    stop_at = started + duration_s
    headers = auth_headers(options.api_key)
    try:
        async with (
            connect(f"{ws_base(url)}/v1/telephony/twilio", additional_headers=headers, open_timeout=10,
                    close_timeout=5) as ws,
            httpx.AsyncClient(base_url=http_base(url), headers=headers, timeout=10) as http,
        ):  # fmt: skip
            call = _Call(ws, result, options)
            await call.start()
            receiver = asyncio.create_task(call.receive())
            uplink = asyncio.create_task(call.uplink())
            try:
                turn, ok = 0, True
                while ok and time.perf_counter() < stop_at and not receiver.done():
                    ok = await call.utter(
                        http, f"{result.session_id}-u{turn}", paragraphs[(index + turn) % len(paragraphs)]
                    )
                    turn += 1
                call.stopping = True
                uplink.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await uplink
                if not receiver.done():
                    with contextlib.suppress(ConnectionClosed):
                        await ws.send(_message("stop", result.stream_sid, call.next_seq(), stop=call.sids))
                    await asyncio.wait_for(asyncio.shield(receiver), 5)
            except TimeoutError:
                result.errors.append("server did not close the stream after stop")
            finally:
                call.stopping = True
                for task in (uplink, receiver):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
    except (OSError, InvalidHandshake, TimeoutError) as exc:
        result.errors.append(f"connect failed: {type(exc).__name__}: {exc}")
    if result.bad_frames:
        result.errors.append(f"{result.bad_frames} media payloads were not {FRAME_BYTES} bytes")
    return result


async def run_twilio_load(
    url: str,
    *,
    calls: int = 1,
    duration_s: float = 10.0,
    paragraphs: Sequence[str] = DEFAULT_PARAGRAPHS,
    **options: Any,
) -> TwilioLoadResult:
    """`calls` concurrent emulated Twilio calls for `duration_s`; options are `TwilioOptions` fields."""
    opts = TwilioOptions(**options)
    results = await asyncio.gather(*(run_call(i, url, duration_s, paragraphs, opts) for i in range(calls)))
    config = {"url": url, "calls": calls, "duration_s": duration_s,
              **{k: v for k, v in asdict(opts).items() if k != "api_key"}}  # fmt: skip
    return TwilioLoadResult(list(results), config)
