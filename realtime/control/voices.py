"""Maps what a client asks for (model, voice) to an engine and one of its voices.

OpenAI model names (`tts-1`, ...) mean the default engine; an engine's own
name selects that engine. OpenAI voice names map through `voice_map` (then
`default_voice`, then the engine's default); an engine's voice ids are always
accepted as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..engines.base import Engine
from ..engines.registry import EngineRegistry
from ..text.sanitize import printable
from .settings import OPENAI_MODELS, OPENAI_VOICES, Settings

OPENAI_SNAPSHOT = re.compile(r"(?:tts-1(?:-hd)?(?:-\d{4})?|gpt-4o-mini-tts(?:-\d{4}-\d{2}-\d{2})?)")
"""OpenAI's speech model ids with their snapshots (`tts-1-1106`, `tts-1-hd-1106`,
`gpt-4o-mini-tts-2025-12-15`, and dated ones to come): all mean the default engine."""


def is_openai_model(model: str) -> bool:
    return model in OPENAI_MODELS or OPENAI_SNAPSHOT.fullmatch(model) is not None


class UnknownModel(LookupError):
    pass


class UnknownVoice(LookupError):
    pass


@dataclass(frozen=True)
class Selection:
    engine: Engine
    voice: str


class VoiceResolver:
    def __init__(self, settings: Settings, engines: EngineRegistry) -> None:
        self.settings = settings
        self.engines = engines

    def openai_voice_names(self) -> tuple[str, ...]:
        return OPENAI_VOICES

    def model_ids(self) -> list[str]:
        return [*OPENAI_MODELS, *self.engines.engines]

    def knows_model(self, model: str) -> bool:
        """An engine's name or an OpenAI model id (snapshots included)."""
        return model in self.engines.engines or is_openai_model(model)

    def engine_for_model(self, model: str | None) -> Engine:
        if model is None or is_openai_model(model):
            model = self.engines.default
        engine = self.engines.engines.get(model)
        if engine is None:
            raise UnknownModel(
                f"model '{printable(model)}' does not exist; available: {', '.join(self.model_ids())}"
            )
        return engine

    def resolve(self, model: str | None, voice: str | None) -> Selection:
        engine = self.engine_for_model(model)
        info = engine.info
        if voice is None:
            return Selection(engine, info.default_voice)
        if info.has_voice(voice):
            return Selection(engine, voice)
        if voice in OPENAI_VOICES:
            mapped = self.settings.voice_map.get(voice) or self.settings.default_voice
            if mapped and info.has_voice(mapped):
                return Selection(engine, mapped)
            return Selection(engine, info.default_voice)
        known = ", ".join([v.id for v in info.voices] + list(OPENAI_VOICES))
        raise UnknownVoice(
            f"voice '{printable(voice)}' is not available for engine '{info.name}'; available: {known}"
        )
