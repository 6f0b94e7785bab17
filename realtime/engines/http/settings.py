"""The `http` engine's settings (`[http]`, `REALTIME_HTTP__*`); pydantic only.

`[http]` configures the engine named `http`; `[http.instances.NAME]` configures more engines of the
same kind under names of the user's choosing (`kokoro-remote`, `xtts`), each with its own upstream(s). Each
name is listed in `engines` like any other engine and sent by clients as `model`.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

OPENAI_VOICES = (
    "alloy", "ash", "ballad", "coral", "echo", "fable", "onyx",
    "nova", "sage", "shimmer", "verse", "marin", "cedar",
)  # fmt: skip
"""The voices of an upstream that lists none: every OpenAI-compatible server accepts OpenAI's names."""

INSTANCE_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")
"""An instance's name: what `engines` lists and clients send as `model`."""


class HttpUpstreamSettings(BaseModel):
    """One OpenAI-compatible speech server, or several copies of it balanced by outstanding requests."""

    urls: list[str] = []
    """Base URLs including the API prefix, as in OpenAI clients: `http://gpu1:8880/v1`. Several: one
    server replicated on several machines, each request going to the one with the fewest in flight."""
    model: str = "tts-1"
    """The `model` sent upstream (`kokoro`, `tts-1`, or an engine of another gateway)."""
    api_key: str | None = None
    """Sent as `Authorization: Bearer` (to the speech and voices endpoints)."""
    voices: list[str] = []
    """The upstream's voice ids; empty: fetched from `GET {url}/audio/voices` at start, else OpenAI's
    voice names when it has no such endpoint."""
    default_voice: str | None = None
    """Empty: `alloy` if the upstream has it, else the first voice it lists."""
    sample_rate: int = Field(default=24000, ge=8000, le=48000)
    """The rate of the upstream's `pcm` (s16le mono): 24000 for OpenAI, Kokoro and this gateway."""
    max_concurrency: int = Field(default=4, ge=1, le=1024)
    """Requests in flight per URL; more jobs wait in the gateway, earliest deadline first."""
    connect_timeout_s: float = Field(default=3.0, gt=0)
    first_byte_timeout_s: float = Field(default=10.0, gt=0)
    """A request whose first audio has not arrived this long after it was sent fails."""
    stall_timeout_s: float = Field(default=10.0, gt=0)
    """A stream that sends nothing for this long after its first audio fails."""
    start_timeout_s: float = Field(default=60.0, ge=0)
    """How long `start` waits for an upstream to answer (it may be loading its model too); then the
    engine fails to start (`/ready` names the error)."""
    down_s: float = Field(default=5.0, ge=0)
    """A URL that refused a connection gets no requests for this long while another URL can take them."""
    extra_body: dict[str, Any] = {}
    """Extra fields for each speech request (e.g. `{"lang_code": "a"}` for Kokoro-FastAPI); a key set
    to null removes that field."""
    supports_speed: bool = True
    """The upstream honours `speed` (OpenAI's API has it); false: a speed other than 1 is refused."""
    streaming: Literal["segment", "sentence", "chunk", "token"] = "chunk"
    """How finely the upstream streams (`segment` for a server that answers with the whole file)."""
    text_front_end: Literal["full", "markup", "off"] = "markup"
    """What the gateway's text front end does before sending (`EngineCapabilities.text_front_end`):
    `markup` by default, as OpenAI's API and Kokoro-FastAPI read numbers themselves; `full` for an
    upstream that reads raw text."""
    nominal_speed: float = Field(default=10.0, gt=0)
    """Audio seconds per wall second of one request: the scheduler's prior until it has measured."""
    audio_per_char_s: float = Field(default=0.065, gt=0)
    """Audio seconds per input character: the scheduler's prior."""

    @field_validator("urls", mode="before")
    @classmethod
    def _one_url(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("urls")
    @classmethod
    def _http_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"upstream URL {url!r} must start with http:// or https://")
        return [url.rstrip("/") for url in value]


class HttpSettings(HttpUpstreamSettings):
    """The `http` engine's own upstream, and more engines of its kind under other names."""

    instances: dict[str, HttpUpstreamSettings] = {}
    """More `http` engines, by name: `[http.instances.kokoro-remote]` is the engine `kokoro-remote`."""

    @field_validator("instances")
    @classmethod
    def _names(cls, value: dict[str, HttpUpstreamSettings]) -> dict[str, HttpUpstreamSettings]:
        for name in value:
            if not INSTANCE_NAME.fullmatch(name):
                raise ValueError(
                    f"instance name {name!r}: lower-case letters, digits, '_' and '-', starting with a letter"
                )
            if name.startswith(("tts-1", "gpt-4o")):
                raise ValueError(
                    f"instance name {name!r} is an OpenAI model id, which means the default engine"
                )
        return value
