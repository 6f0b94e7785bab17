"""Orpheus's settings (`[orpheus]`, `REALTIME_ORPHEUS__*`) and the constants they default to.

Imported when settings load, so pydantic only: no torch, no llama.cpp.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

DEFAULT_ORPHEUS_PROMPT = "<custom_token_3><|begin_of_text|>{voice}: {text}<|eot_id|><custom_token_4><custom_token_5><custom_token_1>"
"""What Orpheus was trained on: start-of-human, text, end-of-human, start-of-AI, start-of-speech."""

ORPHEUS_VOICES = ["tara", "leah", "jess", "leo", "dan", "mia", "zac", "zoe"]
"""The voices the released Orpheus models were trained with."""


class OrpheusSettings(BaseModel):
    """Orpheus: an LLM emitting SNAC codes (in-process GGUF or a remote completions server) + SNAC."""

    backend: Literal["local", "remote"] = "local"
    model: Path | None = None
    """The Orpheus GGUF (backend `local`)."""
    remote_url: str | None = None
    """An OpenAI-compatible server's base URL including `/v1` (backend `remote`): llama.cpp's server, vLLM."""
    remote_model: str = "orpheus"
    remote_api_key: str | None = None
    remote_extra: dict[str, Any] = {}
    """Extra fields for each `/v1/completions` request (e.g. `{"skip_special_tokens": false}` for vLLM)."""
    snac_model: Path | None = None
    """A SNAC 24 kHz checkpoint directory (`config.json` + `pytorch_model.bin`)."""
    prompt_template: str = DEFAULT_ORPHEUS_PROMPT
    voices: list[str] = ORPHEUS_VOICES
    default_voice: str = "tara"
    max_sequences: int = Field(default=4, ge=1, le=256)
    """Sequences generated together in one batch (local backend); also the engine's concurrency."""
    n_ctx: int = Field(default=8192, ge=256)
    """Context shared by all sequences (each gets n_ctx / max_sequences)."""
    n_threads: int = Field(default=0, ge=0, le=256)
    """llama.cpp threads; 0: all cores but one."""
    n_gpu_layers: int = Field(default=0, ge=-1)
    """Layers offloaded to the GPU (-1: all) when llama.cpp was built with CUDA."""
    max_tokens: int = Field(default=1200, ge=7)
    """Codec tokens per segment (~82 per second of audio)."""
    temperature: float = Field(default=0.6, ge=0)
    top_p: float = Field(default=0.8, gt=0, le=1)
    repetition_penalty: float = Field(default=1.1, ge=1)
    seed: int | None = None
    """Reproducible speech: the same text and voice sample the same tokens (None: random)."""
    kv_cache_type: Literal["f16", "f32", "bf16", "q8_0", "q4_0"] = "f16"
    """llama.cpp KV cache type (local backend); quantized caches need flash attention."""
    flash_attn: bool | None = None
    """llama.cpp flash attention (local backend); empty: llama.cpp decides."""
    device: str = "cpu"
    """Where SNAC decodes: `cpu` or `cuda` (falls back to the CPU with a warning)."""
    decoder_noise: Literal["positional", "random", "off"] = "positional"
    """SNAC's noise injection: `positional` (fixed per sample position, so windows and batch-mates
    agree), `random` (SNAC's own), `off`."""
    decode_batch: int = Field(default=0, ge=0, le=256)
    """Windows SNAC decodes in one call, across sessions; 0: 16 on CUDA, 1 on a CPU (where a batch
    costs as much as its windows one by one and only idles the other workers: docs/BENCHMARKS.md)."""
    decode_wait_ms: float = Field(default=2.0, ge=0)
    """How long a decode waits for batch-mates."""
    decode_workers: int = Field(default=1, ge=1, le=64)
    first_frames: int = Field(default=2, ge=1, le=4)
    """Frames (of 7 tokens) before the first audio: 2 means after 14 tokens."""
    low_latency: bool = False
    """Small decode windows throughout (more decode work, less audio held back)."""
