"""Piper's settings (`[piper]` in the TOML file, `REALTIME_PIPER__*` in the environment).

Imported when settings load, so pydantic only: nothing of the engine itself.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class PiperSettings(BaseModel):
    model: Path | None = None
    """A Piper `.onnx` voice; empty means the embedded `en_US-joe-medium`."""
    voices_dir: Path | None = None
    """Extra voices: every `NAME.onnx` with its `NAME.onnx.json` in this directory."""
    workers: int = Field(default=0, ge=0, le=64)
    """Concurrent inference workers; 0 picks one per CPU core."""
    threads_per_worker: int = Field(default=1, ge=1, le=64)
    spin_wait: bool = True
    """Let idle ONNX Runtime threads spin (lower latency when cores are free)."""
    use_cuda: bool = False
    max_phonemes_per_run: int = Field(default=160, ge=16, le=4096)
    """Longest phoneme sequence synthesized in one model call at speed 1 (fewer when slower): ~8 s of
    audio, ~170 MB of ONNX Runtime memory while it runs. A longer sentence (over ~150 characters of
    English) is cut at a clause mark, else at a word boundary."""
    arena_trim_idle_s: float = Field(default=10.0, ge=0)
    """Give ONNX Runtime's unused CPU arena memory back once the engine has been idle this long (0: never;
    with CUDA, GPU memory is not trimmed)."""
