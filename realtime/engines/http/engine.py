"""The `http` engine: another OpenAI-compatible speech server does the synthesis.

Each job is one `POST {url}/audio/speech` asking for `pcm`, streamed back as it arrives. Jobs are
admitted through a `DeadlineGate` of `max_concurrency` slots per URL, earliest deadline first like
the local engines, and each admitted job goes to the URL with the fewest requests in flight. A URL
that refuses the connection is skipped for `down_s` and the job goes to the next one (nothing was
sent, so nothing is repeated); any other failure fails the job with an `UpstreamError` that names
the URL and what it answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import numpy as np

from ..admission import DeadlineGate
from ..base import (
    EngineCapabilities,
    EngineError,
    EngineInfo,
    EngineStats,
    SchedulingHints,
    SynthesisJob,
    Voice,
)
from ..gated import GatedEngine
from .pcm import Pcm16Stream
from .settings import OPENAI_VOICES, HttpUpstreamSettings
from .upstream import Balancer, Upstream, UpstreamError, UpstreamUnreachable
from .voices import parse_voices

log = logging.getLogger(__name__)

PROBE_RETRY_S = 1.0
"""Between attempts to reach an upstream at start."""


class HttpEngine(GatedEngine):
    """Speech from upstream servers, admitted in deadline order and balanced across their URLs."""

    def __init__(self, config: HttpUpstreamSettings, name: str = "http") -> None:
        where = "http" if name == "http" else f"http.instances.{name}"
        if not config.urls:
            raise EngineError(
                f"engine '{name}' needs the URL of an OpenAI-compatible speech server ({where}.urls)"
            )
        self.config = config
        self.stats = EngineStats()
        self.upstreams = [Upstream(url, config) for url in config.urls]
        self.balancer = Balancer(self.upstreams)
        self.gate = DeadlineGate(config.max_concurrency * len(self.upstreams))
        """Admission for every URL together: `max_concurrency` each, so balancing by outstanding
        requests keeps each URL within its share."""
        self._name = name
        self._where = where
        voices = config.voices or [config.default_voice or "alloy"]  # until `start` asks the upstream
        self.info = self._info([Voice(v, v) for v in voices])
        self._ready = False

    def _info(self, voices: Sequence[Voice]) -> EngineInfo:
        config = self.config
        ids = [v.id for v in voices]
        default = config.default_voice or ("alloy" if "alloy" in ids else ids[0])
        if default not in ids:
            raise EngineError(
                f"{self._where}.default_voice {default!r} is not one of the upstream's voices: {', '.join(ids)}"
            )
        return EngineInfo(
            name=self._name,
            sample_rate=config.sample_rate,
            voices=tuple(voices),
            default_voice=default,
            capabilities=EngineCapabilities(
                streaming=config.streaming,
                speed=config.supports_speed,
                device="remote",
                text_front_end=config.text_front_end,
            ),
            hints=SchedulingHints(
                nominal_speed=config.nominal_speed, audio_per_char_s=config.audio_per_char_s
            ),
        )

    async def start(self) -> None:
        """Open a client per URL and wait for one to answer (it may be loading): its voice list
        becomes the engine's unless `voices` is set. Fails after `start_timeout_s` without an answer."""
        started = time.perf_counter()
        for upstream in self.upstreams:
            await upstream.open()
        try:
            payload = await self._first_answer()
            if not self.config.voices:
                listed = parse_voices(payload)
                self.info = self._info(listed or [Voice(v, v) for v in OPENAI_VOICES])
        except BaseException:
            await self._close()
            raise
        self._ready = True
        log.info("http engine ready", extra={"engine": self._name, "urls": len(self.upstreams),
                 "voices": len(self.info.voices), "seconds": round(time.perf_counter() - started, 3)})  # fmt: skip

    async def _first_answer(self) -> Any | None:
        """The voices answer of whichever URL answers first, retried until `start_timeout_s`."""
        deadline = time.monotonic() + self.config.start_timeout_s
        while True:
            errors: list[str] = []
            tasks = [asyncio.ensure_future(u.voices(self.config.model)) for u in self.upstreams]
            try:
                for attempt in asyncio.as_completed(tasks):
                    try:
                        return await attempt
                    except UpstreamError as exc:
                        if exc.status in (401, 403):
                            raise EngineError(f"{exc} (check {self._where}.api_key)") from None
                        errors.append(str(exc))
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            left = deadline - time.monotonic()
            if left <= 0:
                raise EngineError(
                    f"engine '{self._name}': no upstream answered within {self.config.start_timeout_s:g} s: "
                    + "; ".join(errors)
                )
            log.warning("http upstream not answering yet", extra={"engine": self._name, "error": errors[0]})
            await asyncio.sleep(min(PROBE_RETRY_S, left))

    async def stop(self) -> None:
        self._ready = False
        await self._close()

    async def _close(self) -> None:
        await asyncio.gather(*(u.close() for u in self.upstreams), return_exceptions=True)

    def synthesize(self, job: SynthesisJob) -> AsyncIterator[np.ndarray]:
        self.info.check(job.voice, job.speed)
        if not self._ready:
            raise EngineError(f"engine '{self._name}' is not started")
        return self._speak(job)

    async def _speak(self, job: SynthesisJob) -> AsyncIterator[np.ndarray]:
        async with self.gate.slot(lambda: job.deadline):
            if job.cancel.cancelled:
                return  # cancelled while it waited: nothing was sent
            # Closed explicitly: a consumer that goes away must close the upstream request before
            # the slot is given to the next job.
            async with contextlib.aclosing(self._request(job)) as chunks:
                async for chunk in chunks:
                    yield chunk

    def request_body(self, job: SynthesisJob) -> dict[str, Any]:
        """The JSON sent upstream for `job`: OpenAI's fields, then `extra_body` (null removes a field)."""
        body: dict[str, Any] = {
            "model": self.config.model,
            "input": job.text,
            "voice": job.voice,
            "response_format": "pcm",
        }
        if job.speed != 1.0:
            body["speed"] = job.speed
        body.update(self.config.extra_body)
        return {k: v for k, v in body.items() if v is not None}

    async def _request(self, job: SynthesisJob) -> AsyncIterator[np.ndarray]:
        """One job, on the least busy URL (the next one if a URL refuses the connection); runs while
        holding an admission slot."""
        self.stats.started()
        began = time.perf_counter()
        samples = 0
        outcome = "failed"
        body = self.request_body(job)
        tried: list[Upstream] = []
        try:
            while (upstream := self.balancer.pick(exclude=tried)) is not None:
                tried.append(upstream)
                pcm = Pcm16Stream()
                try:
                    async with contextlib.aclosing(upstream.speech(body, job.cancel)) as reads:
                        async for data in reads:
                            chunk = pcm.feed(data)
                            if chunk.size:
                                samples += chunk.size
                                yield chunk
                except UpstreamUnreachable as exc:
                    upstream.mark_down()
                    if samples or len(tried) == len(self.upstreams):
                        raise
                    log.warning("http upstream unreachable, trying another",
                                extra={"engine": self._name, "error": str(exc)})  # fmt: skip
                    continue
                if pcm.pending_bytes and not job.cancel.cancelled:
                    log.warning("http upstream ended inside a sample", extra={"engine": self._name})
                break
            outcome = "cancelled" if job.cancel.cancelled else "completed"
        except (GeneratorExit, asyncio.CancelledError):
            outcome = "cancelled"
            raise
        finally:
            self.stats.record(outcome=outcome, chars=len(job.text), audio_s=samples / self.config.sample_rate,
                              busy_s=time.perf_counter() - began)  # fmt: skip
