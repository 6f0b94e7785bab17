"""Every engine the server can run: the one line a new engine adds, and the registry of loaded ones.

A spec names an engine's package; by convention the package holds `engine.py`
(the engine class, built from its settings model) and `settings.py` (that
pydantic model, pydantic only). The settings root imports the settings models
to aggregate one section per engine (`[piper]`, `REALTIME_ORPHEUS__...`); an
engine's own code is imported only when `engines` names it, and nothing loads a
model at import time. Nothing else branches on an engine's name or type.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from ..control.settings import Settings
    from .base import Engine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineSpec:
    """Where an engine lives: `{package}.engine:{engine}` and `{package}.settings:{settings}`."""

    package: str
    engine: str
    settings: str

    def settings_model(self) -> type[BaseModel]:
        model = getattr(importlib.import_module(f"{self.package}.settings"), self.settings)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"{self.package}.settings.{self.settings} is not a pydantic model")
        return model

    def build(self, config: Any) -> Engine:
        """Construct the engine (cheap: loading happens in its `start`)."""
        return getattr(importlib.import_module(f"{self.package}.engine"), self.engine)(config)


ENGINES: dict[str, EngineSpec] = {
    "piper": EngineSpec("realtime.engines.piper", engine="PiperEngine", settings="PiperSettings"),
    "tone": EngineSpec("realtime.engines.tone", engine="ToneEngine", settings="ToneSettings"),
    "orpheus": EngineSpec("realtime.engines.orpheus", engine="OrpheusEngine", settings="OrpheusSettings"),
}
"""Name (as in `engines`, the `model` field, and the settings section) -> spec."""


def spec(name: str) -> EngineSpec:
    try:
        return ENGINES[name]
    except KeyError:
        raise ValueError(f"unknown engine {name!r}; known: {', '.join(sorted(ENGINES))}") from None


def build_engine(name: str, settings: Settings) -> Engine:
    """The engine `name`, configured by its section of `settings`."""
    return spec(name).build(getattr(settings, name))


class EngineRegistry:
    """The engines this process serves, keyed by name."""

    def __init__(self, engines: dict[str, Engine], default: str) -> None:
        self.engines = engines
        self.default = default
        self.load_errors: dict[str, str] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> EngineRegistry:
        engines = {name: build_engine(name, settings) for name in settings.engines}
        return cls(engines, settings.default_engine)

    def get(self, name: str | None) -> Engine | None:
        return self.engines.get(name or self.default)

    @property
    def ready(self) -> bool:
        return all(e.ready for e in self.engines.values())

    async def start(self) -> None:
        """Load and warm every engine concurrently; failures are kept for /ready."""

        async def start_one(name: str, engine: Engine) -> None:
            try:
                await engine.start()
                log.info("engine ready", extra={"engine": name})
            except Exception as exc:  # reported through /ready and logs
                self.load_errors[name] = f"{type(exc).__name__}: {exc}"
                log.exception("engine failed to start", extra={"engine": name})

        await asyncio.gather(*(start_one(n, e) for n, e in self.engines.items()))

    async def stop(self) -> None:
        await asyncio.gather(*(e.stop() for e in self.engines.values()), return_exceptions=True)
