"""Kokoro's voices: style vectors loaded from a voices file, and blends of them.

A Kokoro voice is a (510, 1, 256) array: one 256-wide style vector per input length (a call with
n phonemes uses row n - 1). `voices-v1.0.bin` is an `.npz` archive under another name, so both
kinds of file load the same way. A blend (`af_bella:0.7+af_sky:0.3`) is the weighted sum of its
voices' arrays, made once and kept: the model only ever sees one style vector.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from ..base import EngineError, parse_blend

STYLE_SHAPE = (510, 1, 256)


def load_voices(path: Path) -> dict[str, np.ndarray]:
    """Every voice of an `.npz` (or `.bin`) voices file, as float32 (510, 256) arrays."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            voices = {name: np.asarray(archive[name], dtype=np.float32) for name in archive.files}
    except (OSError, ValueError) as exc:
        raise EngineError(f"kokoro voices file {path}: {exc}") from exc
    for name, array in voices.items():
        if array.shape != STYLE_SHAPE:
            raise EngineError(f"kokoro voice {name} in {path} has shape {array.shape}, not {STYLE_SHAPE}")
    if not voices:
        raise EngineError(f"kokoro voices file {path} holds no voices")
    return {name: array.reshape(STYLE_SHAPE[0], STYLE_SHAPE[2]) for name, array in voices.items()}


class VoiceBank:
    """The loaded voices, and every blend asked for so far (a client cannot grow it without bound:
    at most `max_blends` are kept, the oldest dropped first)."""

    def __init__(self, voices: dict[str, np.ndarray], max_blends: int = 64) -> None:
        self._voices = voices
        self._blends: dict[str, np.ndarray] = {}
        self._max_blends = max_blends
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return list(self._voices)

    def style(self, voice: str, phonemes: int) -> np.ndarray:
        """The (1, 256) style vector of `voice` (a name or a blend) for a call of `phonemes` tokens."""
        table = self._voices.get(voice)
        if table is None:
            table = self._blend(voice)
        row = min(max(phonemes, 1), table.shape[0]) - 1
        return table[row : row + 1]

    def _blend(self, voice: str) -> np.ndarray:
        with self._lock:
            table = self._blends.get(voice)
            if table is None:
                try:
                    parts = parse_blend(voice)
                except ValueError as exc:
                    raise EngineError(str(exc)) from None
                missing = [name for name, _ in parts if name not in self._voices]
                if missing:
                    raise EngineError(f"unknown kokoro voice {missing[0]!r}")
                table = sum(
                    (self._voices[name] * weight for name, weight in parts),
                    np.zeros_like(next(iter(self._voices.values()))),
                )
                if len(self._blends) >= self._max_blends:
                    self._blends.pop(next(iter(self._blends)))
                self._blends[voice] = table
            return table
