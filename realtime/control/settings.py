"""Server settings: environment variables (prefix `REALTIME_`) over an optional TOML file.

Precedence, highest first: explicit keyword arguments (the CLI), environment
variables, the TOML file named by `REALTIME_CONFIG`, the defaults below.
Nested tables use `__` in environment names, e.g. `REALTIME_PIPER__WORKERS=2`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_ORPHEUS_PROMPT = "<custom_token_3><|begin_of_text|>{voice}: {text}<|eot_id|><custom_token_4><custom_token_5><custom_token_1>"
"""What Orpheus was trained on: start-of-human, text, end-of-human, start-of-AI, start-of-speech."""

OPENAI_VOICES = (
    "alloy", "ash", "ballad", "coral", "echo", "fable", "onyx",
    "nova", "sage", "shimmer", "verse", "marin", "cedar",
)  # fmt: skip
OPENAI_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")


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


class ToneSettings(BaseModel):
    """The synthetic test engine: `speed` x real time, `latency_ms` before the first chunk."""

    sample_rate: int = Field(default=24000, ge=8000, le=48000)
    speed: float = Field(default=50.0, gt=0)
    latency_ms: float = Field(default=5.0, ge=0)
    ms_per_char: float = Field(default=60.0, gt=0)
    chunk_ms: float = Field(default=100.0, gt=0)
    workers: int = Field(default=2, ge=1, le=64)
    load_delay_s: float = Field(default=0.0, ge=0)
    """Simulated model load time, to exercise readiness gating."""


class PlannerSettings(BaseModel):
    """Chunk sizing: small first segment, then grow while the audio buffer stays ahead."""

    first_min_chars: int = Field(default=3, ge=1)
    first_max_chars: int = Field(default=30, ge=1)
    loaded_first_max_chars: int = Field(default=12, ge=1)
    """First-chunk ceiling when the engine is saturated: it shrinks as jobs queue per worker."""
    first_deadline_ms: float = Field(default=250.0, ge=0)
    """A context's first chunk is due this long after it is cut: a newcomer has nothing playing yet,
    so a session about to run dry may go first when its need is more urgent."""
    min_chars: int = Field(default=40, ge=1)
    max_chars: int = Field(default=200, ge=1)
    """Caps one job's length: jobs are not preemptible, so a long one delays newcomers' first audio."""
    growth: float = Field(default=2.0, ge=1.0)
    safety: float = Field(default=0.3, gt=0, le=1)
    """Share of the buffered audio a chunk's synthesis may use; lower keeps chunks small when many
    sessions start at once (a chunk is produced whole before it plays)."""
    ewma_alpha: float = Field(default=0.3, gt=0, le=1)
    clause_margin: float = Field(default=2.0, ge=0)
    """Slack kept before the listener runs dry when waiting for a clause mark, in units of a small
    (`first_max_chars`) chunk's predicted submit-to-ready time: against prediction errors. This much on
    a saturated engine; half on an idle one, where predictions hold."""
    sentence_pause_ms: float = Field(default=400.0, ge=0, le=2000)
    """A pause after a sentence end may stretch by up to this much (silence is sent) while the next
    segment is synthesized, rather than cut that segment mid-phrase to have it ready sooner."""
    clause_pause_ms: float = Field(default=100.0, ge=0, le=2000)
    """The same after a comma, semicolon, colon or dash."""
    idle_flush_ms: float = Field(default=250.0, ge=0)
    max_inflight: int = Field(default=2, ge=1, le=8)
    loaded_start_hold_ms: float = Field(default=2500.0, ge=0)
    """Realtime sessions on a saturated engine: hold a context's first audio until its second segment
    is coming, at most this long (a later start instead of a stutter); 0 disables. The context's
    deadlines count from the real start, so a held context does not take workers from playing ones."""


ORPHEUS_VOICES = ["tara", "leah", "jess", "leo", "dan", "mia", "zac", "zoe"]


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


class WebRtcSettings(BaseModel):
    ice_servers: list[str] = []
    """STUN/TURN URLs offered to aiortc; empty: host candidates only (LAN, loopback, a public IP)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REALTIME_", env_nested_delimiter="__", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    engines: list[str] = ["piper"]
    """Engines loaded at start-up; the first is the default."""
    default_voice: str | None = None
    """Voice of the default engine used for OpenAI voice names; empty: the engine's own default."""
    voice_map: dict[str, str] = {}
    """OpenAI voice name -> engine voice id; unmapped OpenAI names use `default_voice`."""
    api_keys: list[str] = []
    """Accepted bearer keys; empty disables authentication."""
    max_input_chars: int = Field(default=4096, ge=1)
    max_sessions: int = Field(default=256, ge=1)
    max_sessions_per_key: int = Field(default=64, ge=1)
    max_ahead_s: float = Field(default=20.0, gt=0)
    """How much synthesized audio may wait for a slow reader before synthesis pauses."""
    idle_timeout_s: float = Field(default=60.0, gt=0)
    """A realtime session with no client message and nothing to say for this long is closed (4408)."""
    send_timeout_s: float = Field(default=10.0, gt=0)
    """A client that takes longer than this to accept one frame is closed (1008)."""
    max_text_chars: int = Field(default=10_000, ge=1)
    """Characters in one `text.append` (or control API text)."""
    max_context_chars: int = Field(default=100_000, ge=1)
    """Characters buffered in one context."""
    max_contexts: int = Field(default=16, ge=1)
    """Contexts open at once in one session."""
    context_timeout_s: float = Field(default=20.0, ge=0)
    """A speaking context left open (all its text said, no text for this long) while a later context
    of its session waits is finished as if `text.done` had arrived, with a `context_timeout` error
    event; 0: never (a forgotten `text.done` then blocks the session's later contexts)."""
    max_frame_bytes: int = Field(default=1 << 20, ge=1024)
    """Largest WebSocket message accepted (larger: close 1009)."""
    unacked_timeout_s: float = Field(default=30.0, ge=0)
    """A connection whose sent data stays unacknowledged this long is reset (TCP_USER_TIMEOUT; 0: off).
    Frees the socket of a client that stopped reading after its session was given up on."""
    header_timeout_s: float = Field(default=10.0, gt=0)
    """A connection whose request headers are not complete this long after it opened, and again after
    its request's first byte (at most twice this in all), is closed with 408: half-sent requests do
    not hold sockets."""
    body_timeout_s: float = Field(default=30.0, gt=0)
    """A JSON request body not received whole within this long is answered 408."""
    max_queued_events: int = Field(default=10_000, ge=16)
    """Events waiting unsent before a client is deemed not to read them: the session is closed (1008)."""
    websocket_compression: bool = False
    """Accept permessage-deflate when a client offers it (browsers and `websockets` always do). Off:
    audio does not compress, and zlib on every 20 ms frame was ~40 % of the event loop's CPU."""
    rest_sample_rate: int = Field(default=24000, ge=8000, le=48000)
    """Output rate of `/v1/audio/speech` (OpenAI uses 24 kHz)."""
    log_level: str = "INFO"
    log_format: str = "json"
    piper: PiperSettings = PiperSettings()
    tone: ToneSettings = ToneSettings()
    planner: PlannerSettings = PlannerSettings()
    webrtc: WebRtcSettings = WebRtcSettings()
    orpheus: OrpheusSettings = OrpheusSettings()
    web_dir: Path | None = None
    """The browser page served at `/`; empty: the `web/` folder beside the package (if present)."""

    @field_validator("engines")
    @classmethod
    def _non_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one engine must be configured")
        return value

    @model_validator(mode="after")
    def _reset_after_send_timeout(self) -> Settings:
        if self.unacked_timeout_s and self.unacked_timeout_s <= self.send_timeout_s:
            raise ValueError(
                "unacked_timeout_s must be 0 or longer than send_timeout_s: the session gives up on a client "
                "that stopped reading first (1008, with a reason), then the kernel frees its connection"
            )
        return self

    @field_validator("log_format")
    @classmethod
    def _log_format(cls, value: str) -> str:
        if value not in ("json", "text"):
            raise ValueError("log_format must be 'json' or 'text'")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_path = os.environ.get("REALTIME_CONFIG")
        if config_path:
            if not Path(config_path).is_file():
                raise FileNotFoundError(f"REALTIME_CONFIG={config_path} is not a file")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_path))
        return tuple(sources)

    @property
    def default_engine(self) -> str:
        return self.engines[0]


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment, the TOML file and `overrides` (None values ignored)."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
