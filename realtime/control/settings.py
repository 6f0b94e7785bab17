"""Server settings: environment variables (prefix `REALTIME_`) over an optional TOML file.

Precedence, highest first: explicit keyword arguments (the CLI), environment
variables, the TOML file named by `REALTIME_CONFIG`, the defaults below.
Nested tables use `__` in environment names, e.g. `REALTIME_PIPER__WORKERS=2`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

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
    safety: float = Field(default=0.5, gt=0, le=1)
    ewma_alpha: float = Field(default=0.3, gt=0, le=1)
    idle_flush_ms: float = Field(default=250.0, ge=0)
    max_inflight: int = Field(default=2, ge=1, le=8)


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
    max_frame_bytes: int = Field(default=1 << 20, ge=1024)
    """Largest WebSocket message accepted (larger: close 1009)."""
    rest_sample_rate: int = Field(default=24000, ge=8000, le=48000)
    """Output rate of `/v1/audio/speech` (OpenAI uses 24 kHz)."""
    log_level: str = "INFO"
    log_format: str = "json"
    piper: PiperSettings = PiperSettings()
    tone: ToneSettings = ToneSettings()
    planner: PlannerSettings = PlannerSettings()
    webrtc: WebRtcSettings = WebRtcSettings()
    web_dir: Path | None = None
    """The browser page served at `/`; empty: the `web/` folder beside the package (if present)."""

    @field_validator("engines")
    @classmethod
    def _non_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one engine must be configured")
        return value

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
