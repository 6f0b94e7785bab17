"""Builds engines by name from settings, importing each backend only when used.

Adding an engine means adding one line here: no `isinstance` branching on
backends anywhere else. Nothing is loaded at import time.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable

from ..control.settings import Settings
from .base import Engine

log = logging.getLogger(__name__)

FACTORIES: dict[str, str] = {
    "piper": "realtime.engines.piper:PiperEngine",
    "tone": "realtime.engines.tone:ToneEngine",
    "orpheus": "realtime.engines.orpheus.engine:OrpheusEngine",
}


def engine_factory(name: str) -> Callable[[Settings], Engine]:
    try:
        target = FACTORIES[name]
    except KeyError:
        raise ValueError(f"unknown engine {name!r}; known: {', '.join(sorted(FACTORIES))}") from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls).from_settings


class EngineRegistry:
    """The engines this process serves, keyed by name."""

    def __init__(self, engines: dict[str, Engine], default: str) -> None:
        self.engines = engines
        self.default = default
        self.load_errors: dict[str, str] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> EngineRegistry:
        engines = {name: engine_factory(name)(settings) for name in settings.engines}
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
