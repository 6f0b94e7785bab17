"""Server settings: environment variables (prefix `REALTIME_`) over an optional TOML file.

Precedence, highest first: explicit keyword arguments (the CLI), environment
variables, the TOML file named by `REALTIME_CONFIG`, the defaults below.
Nested tables use `__` in environment names, e.g. `REALTIME_PIPER__WORKERS=2`.
Each engine's section (`piper`, `orpheus`, ...) is its own folder's settings
model, added here from the engine registry: a new engine adds no line here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from ..engines.registry import ENGINES

OPENAI_VOICES = (
    "alloy", "ash", "ballad", "coral", "echo", "fable", "onyx",
    "nova", "sage", "shimmer", "verse", "marin", "cedar",
)  # fmt: skip
OPENAI_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")


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
    """Realtime sessions on an engine saturated by other contexts (a context's own next segments do not
    count): hold a context's first audio until its second segment is coming, at most this long (a later
    start instead of a stutter); 0 disables. The context's deadlines count from the real start, so a
    held context does not take workers from playing ones."""


class FailoverSettings(BaseModel):
    """Which engine takes over when another fails, and when a context decides that it has."""

    fallbacks: dict[str, list[str]] = {}
    """Engine -> the engines that take over its contexts, in order, e.g. `{"orpheus": ["piper"]}`;
    a fallback's own fallbacks follow it."""
    stall_ms: float = Field(default=1500.0, gt=0)
    """A job that has made no progress (no audio) for this long is stalled and moves to the
    fallback; later when the audio buffered ahead of it lasts longer: this long before it runs out."""
    retry_after_s: float = Field(default=10.0, ge=0)
    """After an engine failed a context, new contexts start on its fallback for this long, then try
    it again; running contexts stay where they are."""

    @field_validator("fallbacks")
    @classmethod
    def _no_self_fallback(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, chain in value.items():
            if name in chain:
                raise ValueError(f"engine '{name}' cannot be its own fallback")
        return value


class TextSettings(BaseModel):
    """The text front end (`realtime/text/normalize.py`)."""

    normalize: Literal["auto", "full", "markup", "off"] = "auto"
    """`auto`: what each engine declares (`EngineCapabilities.text_front_end`); otherwise this mode for
    every engine. A session (`session.update` `normalize`) or a request (`normalize`) may override it."""


class WebRtcSettings(BaseModel):
    ice_servers: list[str] = []
    """STUN/TURN URLs offered to aiortc; empty: host candidates only (LAN, loopback, a public IP)."""


class CoreSettings(BaseSettings):
    """Everything but the engines' own sections (see `Settings`)."""

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
    admin_keys: list[str] = []
    """Keys for the admin routes (`/v1/engines`, `/v1/config`); they work on every other route too.
    When any key is configured, the admin routes refuse a regular key (403)."""
    drain_timeout_s: float = Field(default=30.0, ge=0)
    """An engine being unloaded or replaced waits this long for its running contexts, then stops
    under those that are left (they move to a fallback, or end with `engine_error`)."""
    watch_config: bool = False
    """Re-read the `REALTIME_CONFIG` file when it changes and apply its hot settings (`PATCH /v1/config`)."""
    failover: FailoverSettings = FailoverSettings()
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
    planner: PlannerSettings = PlannerSettings()
    text: TextSettings = TextSettings()
    webrtc: WebRtcSettings = WebRtcSettings()
    web_dir: Path | None = None
    """The browser page served at `/`; empty: the `web/` folder beside the package (if present)."""

    @field_validator("engines")
    @classmethod
    def _non_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one engine must be configured")
        return value

    @model_validator(mode="after")
    def _reset_after_send_timeout(self) -> CoreSettings:
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


def _engine_sections() -> dict[str, Any]:
    sections: dict[str, Any] = {}
    for name, spec in ENGINES.items():
        if name in CoreSettings.model_fields:
            raise RuntimeError(f"engine name {name!r} collides with the setting of that name")
        model = spec.settings_model()
        sections[name] = (model, Field(default_factory=model, description=f"The {name} engine's settings."))
    return sections


Settings = create_model(
    "Settings",
    __base__=CoreSettings,
    __module__=__name__,
    __doc__="The settings root: `CoreSettings` plus one section per registered engine.",
    **_engine_sections(),
)


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment, the TOML file and `overrides` (None values ignored)."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
