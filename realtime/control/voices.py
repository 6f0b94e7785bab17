"""Maps what a client asks for (model, voice) to an engine and one of its voices.

OpenAI model names (`tts-1`, ...) mean the default engine; an engine's own
name selects that engine. OpenAI voice names map through `voice_map` (then
`default_voice`, then the engine's default); an engine's voice ids are always
accepted as they are. A request is checked against the engine it names, loaded
or not: whether that engine or a fallback serves it is decided when its context
opens (`Gateway.new_context`). Listings show what is loaded now.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..engines.base import Engine, EngineInfo
from ..engines.managed import EngineState
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
    name: str = ""
    """The engine's name in the registry (empty: `engine.info.name`)."""

    @property
    def engine_name(self) -> str:
        return self.name or self.engine.info.name


class VoiceResolver:
    def __init__(self, settings: Settings, engines: EngineRegistry) -> None:
        self.settings = settings
        self.engines = engines

    def openai_voice_names(self) -> tuple[str, ...]:
        return OPENAI_VOICES

    def loaded(self) -> list[str]:
        """The engines loaded and taking work right now."""
        return [e.name for e in self.engines.entries() if e.state is EngineState.READY]

    def model_ids(self) -> list[str]:
        return [*OPENAI_MODELS, *self.loaded()]

    def knows_model(self, model: str) -> bool:
        """A loaded engine's name or an OpenAI model id (snapshots included)."""
        return model in self.loaded() or is_openai_model(model)

    def engine_name(self, model: str | None) -> str:
        """The configured engine `model` names (loaded or not); UnknownModel if none."""
        if model is None or is_openai_model(model):
            model = self.engines.default
        if self.engines.entry(model) is None:
            raise UnknownModel(
                f"model '{printable(model)}' does not exist; available: {', '.join(self.model_ids())}"
            )
        return model

    def engine_for_model(self, model: str | None) -> Engine:
        engine = self.engines.info_of(self.engine_name(model))
        assert engine is not None
        return engine

    def resolve(self, model: str | None, voice: str | None) -> Selection:
        name = self.engine_name(model)
        engine = self.engine_for_model(name)
        return Selection(engine, self.voice_id(engine.info, voice), name)

    def voice_id(self, info: EngineInfo, voice: str | None) -> str:
        """The voice of `info`'s engine that `voice` means; UnknownVoice if none."""
        if voice is None:
            return info.default_voice
        if info.has_voice(voice):
            return voice
        if voice in OPENAI_VOICES:
            mapped = self.settings.voice_map.get(voice) or self.settings.default_voice
            return mapped if mapped and info.has_voice(mapped) else info.default_voice
        known = ", ".join([v.id for v in info.voices] + list(OPENAI_VOICES))
        raise UnknownVoice(
            f"voice '{printable(voice)}' is not available for engine '{info.name}'; available: {known}"
        )

    def fallback_voice(self, info: EngineInfo, voice: str) -> str:
        """What a fallback engine speaks for a context in `voice`: the same id if it has it, else
        what `voice_map` gives for it, else its default voice."""
        try:
            return self.voice_id(info, voice)
        except UnknownVoice:
            return info.default_voice
