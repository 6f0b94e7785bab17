"""Voice lists as OpenAI-compatible speech servers publish them (`GET /v1/audio/voices`).

There is no standard: Kokoro-FastAPI answers `{"voices": ["af_heart", ...]}` (before 0.3) or
`{"voices": [{"id", "name"}, ...]}`, this gateway `{"voices": [{"id", "name", "engine",
"language"}, ...]}` plus OpenAI names marked `alias_of`, others a bare list or `{"data": [...]}`
with `voice_id`. Whatever the shape, the ids come out; aliases are left to this gateway's own
OpenAI-name mapping.
"""

from __future__ import annotations

from typing import Any

from ..base import Voice


def parse_voices(payload: Any) -> list[Voice]:
    """The voices in a voices endpoint's JSON answer, in its order, each id once; [] if none found."""
    items = payload
    if isinstance(payload, dict):
        items = payload.get("voices", payload.get("data"))
    if not isinstance(items, list):
        return []
    voices: dict[str, Voice] = {}
    for item in items:
        voice = _voice(item)
        if voice is not None and voice.id not in voices:
            voices[voice.id] = voice
    return list(voices.values())


def _voice(item: Any) -> Voice | None:
    if isinstance(item, str):
        return Voice(item, item) if item else None
    if not isinstance(item, dict) or item.get("alias_of"):
        return None
    voice_id = item.get("id", item.get("voice_id", item.get("name")))
    if not isinstance(voice_id, str) or not voice_id:
        return None
    name = item.get("name")
    language = item.get("language")
    return Voice(
        voice_id,
        name if isinstance(name, str) and name else voice_id,
        language if isinstance(language, str) else None,
    )
