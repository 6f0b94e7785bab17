"""Every engine the server can run: the one line a new engine adds, and the registry of loaded ones.

A spec names an engine's package; by convention the package holds `engine.py`
(the engine class, built from its settings model) and `settings.py` (that
pydantic model, pydantic only). The settings root imports the settings models
to aggregate one section per engine (`[piper]`, `REALTIME_ORPHEUS__...`); an
engine's own code is imported only when `engines` names it, and nothing loads a
model at import time. Nothing else branches on an engine's name or type.

A spec with `instances` is an engine kind that can also run under names the user
chooses, one engine per entry of that field of its settings (the `http` engine:
one upstream server per name). `build_engine` resolves those names too.
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
    instances: str | None = None
    """The field of the engine's settings that maps names of the user's choosing to settings of more
    engines of its kind (`http`'s `instances`), each built with `name=` set; None: it runs once, under
    its registered name."""

    def settings_model(self) -> type[BaseModel]:
        model = getattr(importlib.import_module(f"{self.package}.settings"), self.settings)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"{self.package}.settings.{self.settings} is not a pydantic model")
        return model

    def build(self, config: Any, name: str | None = None) -> Engine:
        """Construct the engine (cheap: loading happens in its `start`); `name`: an instance's."""
        engine = getattr(importlib.import_module(f"{self.package}.engine"), self.engine)
        return engine(config) if name is None else engine(config, name=name)


ENGINES: dict[str, EngineSpec] = {
    "piper": EngineSpec("realtime.engines.piper", engine="PiperEngine", settings="PiperSettings"),
    "tone": EngineSpec("realtime.engines.tone", engine="ToneEngine", settings="ToneSettings"),
    "orpheus": EngineSpec("realtime.engines.orpheus", engine="OrpheusEngine", settings="OrpheusSettings"),
    "http": EngineSpec(
        "realtime.engines.http", engine="HttpEngine", settings="HttpSettings", instances="instances"
    ),
}
"""Name (as in `engines`, the `model` field, and the settings section) -> spec."""


def spec(name: str) -> EngineSpec:
    try:
        return ENGINES[name]
    except KeyError:
        raise ValueError(f"unknown engine {name!r}; known: {', '.join(sorted(ENGINES))}") from None


def instances(settings: Settings) -> dict[str, tuple[EngineSpec, Any]]:
    """Engines configured under names of the user's choosing: name -> (its kind's spec, its settings).
    A name taken twice (by a registered engine or another instance) is refused."""
    found: dict[str, tuple[EngineSpec, Any]] = {}
    for kind, kind_spec in ENGINES.items():
        if kind_spec.instances is None:
            continue
        for name, config in getattr(getattr(settings, kind), kind_spec.instances).items():
            if name in ENGINES or name in found:
                raise ValueError(f"engine name {name!r} in {kind}.{kind_spec.instances} is already taken")
            found[name] = (kind_spec, config)
    return found


def build_engine(name: str, settings: Settings) -> Engine:
    """The engine `name`, configured by its section of `settings`, or an instance of that name."""
    named = instances(settings)
    if name in named:
        kind_spec, config = named[name]
        return kind_spec.build(config, name=name)
    if name not in ENGINES:
        known = ", ".join(sorted([*ENGINES, *named]))
        raise ValueError(f"unknown engine {name!r}; known: {known}")
    return ENGINES[name].build(getattr(settings, name))


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
