"""Validation of `POST /v1/audio/speech` bodies, field by field, with OpenAI's error shape.

Pure: takes the decoded JSON, returns a `SpeechRequest` or raises `ApiError`
naming the offending `param`. Unknown fields are ignored, as OpenAI's SDKs
may send extras.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..text.sanitize import InvalidText, clean_text, speakable
from ..text.ssml import check as check_ssml
from .errors import ApiError

OPENAI_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
EXTRA_FORMATS = ("mulaw", "alaw")
"""Telephony formats (8 kHz by default), an extension to OpenAI's list."""
STREAM_FORMATS = ("audio", "sse")
MIN_SPEED, MAX_SPEED = 0.25, 4.0
MAX_INSTRUCTIONS = 4096
NORMALIZE = ("auto", "full", "markup", "off")
"""The text front end's modes (extension field `normalize`; `auto`: the server's `text.normalize`)."""


@dataclass(frozen=True)
class SpeechRequest:
    model: str
    input: str
    voice: str
    response_format: str = "mp3"
    speed: float = 1.0
    stream_format: str = "audio"
    instructions: str | None = None
    sample_rate: int | None = None
    normalize: str = "auto"
    ssml: bool = False


def _bad(message: str, param: str, code: str = "invalid_value") -> ApiError:
    return ApiError(400, message, param=param, code=code)


def _string(body: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise _bad(f"Missing required parameter: '{name}'.", name, "missing_required_parameter")
        return None
    if not isinstance(value, str):
        raise _bad(
            f"Invalid type for '{name}': expected a string, got {type(value).__name__}.", name, "invalid_type"
        )
    return _valid_unicode(value, name)


def _valid_unicode(value: str, name: str) -> str:
    """`value` with control and invisible characters cleaned; 400 when it is not valid Unicode."""
    try:
        return clean_text(value)
    except InvalidText as exc:
        raise _bad(f"Invalid value for '{name}': {exc}.", name, InvalidText.code) from None


def _choice(body: dict[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = _string(body, name, required=False)
    if value is None:
        return default
    if value not in allowed:
        raise _bad(
            f"Invalid value for '{name}': '{value}'. Supported values are: {', '.join(allowed)}.", name
        )
    return value


def parse_speech_request(body: object, *, max_input_chars: int) -> SpeechRequest:
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.", code="invalid_json")
    model = _string(body, "model", required=True)
    text = _string(body, "input", required=True)
    assert model is not None and text is not None
    if not text.strip():
        raise _bad("'input' must not be empty.", "input", "empty_input")
    if not speakable(text):
        raise _bad(
            "'input' has nothing to speak: it holds no letter, digit or symbol (only punctuation, spaces or "
            "invisible characters).",
            "input",
            "empty_input",
        )
    if len(text) > max_input_chars:
        raise _bad(
            f"'input' is {len(text)} characters long; the maximum is {max_input_chars}.",
            "input",
            "string_above_max_length",
        )
    raw_voice = body.get("voice")
    if isinstance(raw_voice, dict):
        raw_voice = raw_voice.get("id")
        if not isinstance(raw_voice, str):
            raise _bad("'voice' as an object needs a string 'id'.", "voice", "invalid_type")
    if raw_voice is None:
        raise _bad("Missing required parameter: 'voice'.", "voice", "missing_required_parameter")
    if not isinstance(raw_voice, str):
        raise _bad("Invalid type for 'voice': expected a string or {\"id\": ...}.", "voice", "invalid_type")
    raw_voice = _valid_unicode(raw_voice, "voice")
    speed = body.get("speed", 1.0)
    if speed is None:
        speed = 1.0
    if isinstance(speed, bool) or not isinstance(speed, int | float):
        raise _bad("Invalid type for 'speed': expected a number.", "speed", "invalid_type")
    if not MIN_SPEED <= speed <= MAX_SPEED:
        raise _bad(f"'speed' must be between {MIN_SPEED} and {MAX_SPEED}; got {speed}.", "speed")
    instructions = _string(body, "instructions", required=False)
    if instructions is not None and len(instructions) > MAX_INSTRUCTIONS:
        raise _bad(f"'instructions' is longer than {MAX_INSTRUCTIONS} characters.", "instructions")
    sample_rate = body.get("sample_rate")
    if sample_rate is not None and (
        isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or not 8000 <= sample_rate <= 48000
    ):
        raise _bad("'sample_rate' must be an integer between 8000 and 48000.", "sample_rate")
    ssml = body.get("ssml", False)
    if ssml is None:
        ssml = False
    if not isinstance(ssml, bool):
        raise _bad("Invalid type for 'ssml': expected a boolean.", "ssml", "invalid_type")
    if ssml and (problem := check_ssml(text)) is not None:
        # The whole input is here before any audio: malformed markup is refused rather than guessed at.
        raise _bad(f"'input' is not valid SSML: {problem}.", "input", "invalid_ssml")
    return SpeechRequest(
        model=model,
        input=text,
        voice=raw_voice,
        response_format=_choice(body, "response_format", OPENAI_FORMATS + EXTRA_FORMATS, "mp3"),
        speed=float(speed),
        stream_format=_choice(body, "stream_format", STREAM_FORMATS, "audio"),
        instructions=instructions,
        sample_rate=sample_rate,
        normalize=_choice(body, "normalize", NORMALIZE, "auto"),
        ssml=ssml,
    )
