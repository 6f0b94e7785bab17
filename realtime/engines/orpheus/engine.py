"""The `orpheus` engine: token generator → frame assembler → shared SNAC decoder.

One segment is one generation: the prompt carries the voice and the text; the
generator streams `<custom_token_N>` numbers (constrained to each position's
range when it runs in-process), `FrameAssembler` turns them into 7-code frames,
and a `SnacStream` per segment decodes windows through the `SnacBatcher` that
every session shares, so concurrent sessions are decoded together. The first
audio comes after `first_frames` frames (14 tokens by default), and each
stream's windows grow as its audio gets ahead of playback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections.abc import AsyncIterator

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
from .codes import FRAME_TOKENS, SAMPLE_RATE, FrameAssembler, format_prompt, frames_to_levels
from .llm import GenerationRequest, TokenGenerator
from .settings import OrpheusSettings

log = logging.getLogger(__name__)

REALTIME_TOKENS_PER_S = 7 * SAMPLE_RATE / 2048
"""~82 tokens/s: the generation speed at which audio is produced in real time."""


def build_generator(config: OrpheusSettings) -> TokenGenerator:
    """The configured token source; nothing is loaded until `start()`."""
    if config.backend == "remote":
        if not config.remote_url:
            raise EngineError("orpheus: backend 'remote' needs orpheus.remote_url")
        from .llm_remote import RemoteCompletionsGenerator

        return RemoteCompletionsGenerator(
            config.remote_url,
            model=config.remote_model,
            api_key=config.remote_api_key,
            extra_body=config.remote_extra or None,
        )
    if config.model is None:
        raise EngineError("orpheus: backend 'local' needs orpheus.model (a GGUF file)")
    from .llm_local import LlamaCppGenerator

    return LlamaCppGenerator(
        config.model,
        n_ctx=config.n_ctx,
        max_sequences=config.max_sequences,
        n_threads=config.n_threads or None,
        n_gpu_layers=config.n_gpu_layers,
        kv_cache_type=config.kv_cache_type,
        flash_attn=config.flash_attn,
    )


class OrpheusEngine(GatedEngine):
    """Generations admitted in deadline order, `max_sequences` at a time, decoded by a shared SNAC."""

    def __init__(self, config: OrpheusSettings) -> None:
        if config.snac_model is None:
            raise EngineError("orpheus needs orpheus.snac_model: a SNAC 24 kHz checkpoint directory")
        if config.default_voice not in config.voices:
            raise EngineError(f"orpheus default_voice {config.default_voice!r} is not in orpheus.voices")
        self.config = config
        self.stats = EngineStats()
        self.generator = build_generator(config)
        self.info = EngineInfo(
            name="orpheus",
            sample_rate=SAMPLE_RATE,
            voices=tuple(Voice(v, v, "en") for v in config.voices),
            default_voice=config.default_voice,
            capabilities=EngineCapabilities(streaming="token", batching=True, device=config.device),
            hints=SchedulingHints(nominal_speed=1.5, audio_per_char_s=0.065),
        )
        self.gate = DeadlineGate(config.max_sequences)
        """Admission: the generator batches what it is given, so what waits, waits here in deadline
        order (the generator's own queue would serve it first come, first served)."""
        self.batcher = None
        self._ready = False

    @property
    def queue_depth(self) -> int:
        return self.gate.queue_depth + int(getattr(self.generator, "waiting_requests", 0))

    async def start(self) -> None:
        from .snac_batcher import SnacBatcher
        from .snac_model import load_snac

        started = time.perf_counter()
        await self.generator.start()
        model = await asyncio.to_thread(
            load_snac, self.config.snac_model, device=self.config.device, noise=self.config.decoder_noise
        )
        self.batcher = SnacBatcher(
            model,
            max_batch=self.config.decode_batch or None,
            max_wait_ms=self.config.decode_wait_ms,
            workers=self.config.decode_workers,
        )
        self.batcher.start()
        await self.batcher.decode(frames_to_levels([[0] * 7] * self.config.first_frames))  # warm-up
        self._ready = True
        log.info("orpheus ready", extra={"backend": self.config.backend,
                                         "seconds": round(time.perf_counter() - started, 3)})  # fmt: skip

    async def stop(self) -> None:
        self._ready = False
        if self.batcher is not None:
            await self.batcher.stop()
        await self.generator.stop()

    def synthesize(self, job: SynthesisJob) -> AsyncIterator[np.ndarray]:
        self.info.check(job.voice, job.speed)
        if not self._ready or self.batcher is None:
            raise EngineError("orpheus is not loaded")
        return self._speak(job)

    async def _speak(self, job: SynthesisJob) -> AsyncIterator[np.ndarray]:
        async with self.gate.slot(lambda: job.deadline):
            if job.cancel.cancelled:
                return  # cancelled while it waited: nothing started, nothing to undo
            # Closed explicitly: a consumer that goes away must free the sequence before the slot.
            async with contextlib.aclosing(self._generate(job)) as chunks:
                async for chunk in chunks:
                    yield chunk

    async def _generate(self, job: SynthesisJob) -> AsyncIterator[np.ndarray]:
        """One generation, decoded as its frames arrive; runs while holding an admission slot."""
        from .snac_stream import SnacStream, WindowPlanner

        assert self.batcher is not None
        config = self.config
        self.stats.started()
        began = time.perf_counter()
        samples = 0
        outcome = "failed"
        first_audio_at: float | None = None
        stream = SnacStream(
            WindowPlanner(first_frames=config.first_frames, low_latency=config.low_latency or job.low_latency)
        )
        assembler = FrameAssembler()
        request = GenerationRequest(
            prompt=format_prompt(job.text, job.voice, config.prompt_template),
            max_tokens=config.max_tokens - config.max_tokens % FRAME_TOKENS,  # whole frames only
            seed=None
            if config.seed is None
            else zlib.crc32(f"{config.seed}\0{job.voice}\0{job.text}".encode()),
            temperature=config.temperature,
            top_p=config.top_p,
            repetition_penalty=config.repetition_penalty,
            cancel=job.cancel,
        )
        tokens = self.generator.generate(request)
        last_frame_at = time.perf_counter()
        try:
            async for number in tokens:
                frame = assembler.push(number)
                if frame is None:
                    continue
                now = time.perf_counter()
                stream.planner.observe_arrival(1, now - last_frame_at)
                last_frame_at = now
                # Audio the listener has not heard yet, assuming playback started with the first chunk.
                ahead = samples / SAMPLE_RATE - (now - first_audio_at) if first_audio_at else 0.0
                chunk = await stream.feed(frame, self.batcher, buffered_s=max(0.0, ahead))
                if chunk is not None and chunk.size:
                    first_audio_at = first_audio_at or time.perf_counter()
                    samples += chunk.size
                    yield chunk
            if job.cancel.cancelled:
                outcome = "cancelled"
                return
            tail = await stream.finish(self.batcher)
            if tail.size:
                samples += tail.size
                yield tail
            outcome = "completed"
        except (GeneratorExit, asyncio.CancelledError):
            outcome = "cancelled"
            raise
        finally:
            close = getattr(tokens, "aclose", None)
            if close is not None:
                await close()  # frees the sequence (and its KV) at once
            if assembler.dropped_tokens:
                log.warning("orpheus dropped out-of-range tokens", extra={"tokens": assembler.dropped_tokens})
            self.stats.record(outcome=outcome, chars=len(job.text), audio_s=samples / SAMPLE_RATE,
                              busy_s=time.perf_counter() - began)  # fmt: skip
