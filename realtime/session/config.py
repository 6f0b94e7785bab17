"""Per-session configuration and the validation of `session.update` patches.

Pure: a patch (the JSON object a client sent) is checked field by field and
merged into a new immutable `SessionConfig`; errors name the offending field.
Engine and voice names are checked by the session against the registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ..audio.encoders import AUDIO_FORMATS
from .front_end import SETTINGS as NORMALIZE_SETTINGS

TELEPHONY = ("mulaw", "alaw")
INPUT_ENCODINGS = ("pcm", "mulaw", "alaw")


class ConfigError(ValueError):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


@dataclass(frozen=True)
class OutputConfig:
    encoding: str = "pcm"
    sample_rate: int = 24000
    frame_ms: int = 20
    lead_ms: float | None = 300.0
    """Send audio at most this far ahead of real-time playback; None: as fast as possible."""

    @property
    def frame_samples(self) -> int:
        return max(1, self.sample_rate * self.frame_ms // 1000)


@dataclass(frozen=True)
class InputAudioConfig:
    encoding: str = "pcm"
    sample_rate: int = 16000


@dataclass(frozen=True)
class BargeInConfig:
    enabled: bool = True
    aggressiveness: int = 2
    min_speech_ms: int = 60
    """Speech must last this long before it interrupts: the barge-in latency floor (see BENCHMARKS.md)."""


@dataclass(frozen=True)
class SessionConfig:
    engine: str | None = None
    voice: str | None = None
    speed: float = 1.0
    output: OutputConfig = field(default_factory=OutputConfig)
    input_audio: InputAudioConfig | None = None
    barge_in: BargeInConfig = field(default_factory=BargeInConfig)
    latency: str = "balanced"
    metrics: bool = False
    normalize: str = "auto"
    """The text front end's mode for this session's contexts (`auto`: the server's `text.normalize`)."""
    ssml: bool = False
    """Text is SSML (`text/ssml.py`). Other dialects map their own switch here (ElevenLabs'
    `enable_ssml_parsing`, say)."""
    alignment: bool = True
    """Send `alignment` events (word timings) when the engine times its words."""

    def describe(self) -> dict[str, Any]:
        out = self.output
        return {
            "engine": self.engine,
            "voice": self.voice,
            "speed": self.speed,
            "output": {"encoding": out.encoding, "sample_rate": out.sample_rate, "frame_ms": out.frame_ms,
                       "lead_ms": out.lead_ms},
            "input_audio": None if self.input_audio is None else
            {"encoding": self.input_audio.encoding, "sample_rate": self.input_audio.sample_rate},
            "barge_in": {"enabled": self.barge_in.enabled, "aggressiveness": self.barge_in.aggressiveness,
                         "min_speech_ms": self.barge_in.min_speech_ms},
            "latency": self.latency,
            "metrics": self.metrics,
            "normalize": self.normalize,
            "ssml": self.ssml,
            "alignment": self.alignment,
        }  # fmt: skip


def _number(value: object, name: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(name, "must be a number")
    if not lo <= value <= hi:
        raise ConfigError(name, f"must be between {lo:g} and {hi:g}")
    return float(value)


def _integer(value: object, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(name, "must be an integer")
    if not lo <= value <= hi:
        raise ConfigError(name, f"must be between {lo} and {hi}")
    return value


def _choice(value: object, name: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(name, f"must be one of {', '.join(allowed)}")
    assert isinstance(value, str)
    return value


def _object(value: object, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(name, "must be an object")
    return value


MAX_NAME_CHARS = 200
"""Engine and voice names: far longer than any real one."""


def _name(value: object, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(name, "must be a non-empty string")
    if len(value) > MAX_NAME_CHARS:
        raise ConfigError(name, f"is {len(value)} characters long; names have at most {MAX_NAME_CHARS}")
    return value


def _output(current: OutputConfig, patch: dict[str, Any]) -> OutputConfig:
    out = current
    if "encoding" in patch:
        encoding = _choice(patch["encoding"], "output.encoding", AUDIO_FORMATS)
        # Telephony encodings default to 8 kHz unless a rate is given with them.
        rate = 8000 if encoding in TELEPHONY else (24000 if out.encoding in TELEPHONY else out.sample_rate)
        out = replace(out, encoding=encoding, sample_rate=rate)
    if "sample_rate" in patch:
        out = replace(out, sample_rate=_integer(patch["sample_rate"], "output.sample_rate", 8000, 48000))
    if "frame_ms" in patch:
        out = replace(out, frame_ms=_integer(patch["frame_ms"], "output.frame_ms", 10, 1000))
    if "lead_ms" in patch:
        lead = patch["lead_ms"]
        lead = None if lead is None or lead == 0 else _number(lead, "output.lead_ms", 0, 600_000)
        out = replace(out, lead_ms=lead)
    return out


def apply_update(config: SessionConfig, patch: dict[str, Any]) -> SessionConfig:
    """Merge a `session.update` patch into `config`; ConfigError names the bad field."""
    new = config
    if "engine" in patch:
        new = replace(new, engine=_name(patch["engine"], "engine"))
    if "voice" in patch:
        new = replace(new, voice=_name(patch["voice"], "voice"))
    if "speed" in patch:
        new = replace(new, speed=_number(patch["speed"], "speed", 0.25, 4.0))
    if "output" in patch:
        new = replace(new, output=_output(new.output, _object(patch["output"], "output")))
    if "input_audio" in patch:
        value = patch["input_audio"]
        if value is None:
            new = replace(new, input_audio=None)
        else:
            value = _object(value, "input_audio")
            base = new.input_audio or InputAudioConfig()
            encoding = _choice(value.get("encoding", base.encoding), "input_audio.encoding", INPUT_ENCODINGS)
            default_rate = 8000 if encoding in TELEPHONY else base.sample_rate
            rate = _integer(value.get("sample_rate", default_rate), "input_audio.sample_rate", 8000, 48000)
            new = replace(new, input_audio=InputAudioConfig(encoding, rate))
    if "barge_in" in patch:
        value = _object(patch["barge_in"], "barge_in")
        b = new.barge_in
        if "enabled" in value:
            if not isinstance(value["enabled"], bool):
                raise ConfigError("barge_in.enabled", "must be true or false")
            b = replace(b, enabled=value["enabled"])
        for key in ("aggressiveness", "mode"):
            if key in value:
                b = replace(b, aggressiveness=_integer(value[key], f"barge_in.{key}", 0, 3))
        if "min_speech_ms" in value:
            b = replace(b, min_speech_ms=_integer(value["min_speech_ms"], "barge_in.min_speech_ms", 20, 5000))
        new = replace(new, barge_in=b)
    if "latency" in patch:
        new = replace(new, latency=_choice(patch["latency"], "latency", ("low", "balanced")))
    if "metrics" in patch:
        if not isinstance(patch["metrics"], bool):
            raise ConfigError("metrics", "must be true or false")
        new = replace(new, metrics=patch["metrics"])
    if "normalize" in patch:
        new = replace(new, normalize=_choice(patch["normalize"], "normalize", NORMALIZE_SETTINGS))
    if "ssml" in patch:
        if not isinstance(patch["ssml"], bool):
            raise ConfigError("ssml", "must be true or false")
        new = replace(new, ssml=patch["ssml"])
    if "alignment" in patch:
        if not isinstance(patch["alignment"], bool):
            raise ConfigError("alignment", "must be true or false")
        new = replace(new, alignment=patch["alignment"])
    return new
