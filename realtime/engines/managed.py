"""One configured engine as the registry manages it: its state, its loaded instance, who uses it.

An engine is configured (a name, the kind of engine from `ENGINES`, its settings section)
whether or not its model is in memory. Its state:

    unloaded --load--> loading --> ready --unload--> draining --> unloaded
                          \\--> failed --load--> loading

A loaded model is an `Instance`; every speech context using it holds a `Lease`, so an
unload can wait until the running contexts are done (*draining*: new work is refused,
running work finishes or moves to a fallback), and only then stop the model. When the
settings of a ready engine are replaced, the new instance loads beside the old one and
takes over when ready; the old one drains as if unloaded. Event-loop only.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from .health import EngineHealth

if TYPE_CHECKING:
    from pydantic import BaseModel

    from .base import Engine


class EngineState(str, Enum):
    UNLOADED = "unloaded"
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"
    DRAINING = "draining"


class Instance:
    """A built engine object and the leases on it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.leases = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def acquire(self) -> Lease:
        self.leases += 1
        self._idle.clear()
        return Lease(self)

    def _release(self) -> None:
        self.leases -= 1
        if self.leases <= 0:
            self.leases = 0
            self._idle.set()

    async def wait_idle(self, timeout_s: float) -> bool:
        """Until no context holds it (True), or `timeout_s` passed (False)."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except asyncio.TimeoutError:
            return False
        return True


class Lease:
    """A context's claim on an instance; `release` is idempotent."""

    def __init__(self, instance: Instance) -> None:
        self._instance: Instance | None = instance

    def release(self) -> None:
        if self._instance is not None:
            self._instance._release()
            self._instance = None


@dataclass
class ManagedEngine:
    name: str
    """What clients send as `model` and what fallback chains name."""
    kind: str | None
    """Its `ENGINES` entry; None for an engine object handed in ready-made (tests): it cannot be rebuilt."""
    config: BaseModel | None
    """Its settings section (the kind's settings model)."""
    engine: Engine
    """The instance serving (or loading); after an unload, the stopped one, kept for its `info`."""
    state: EngineState = EngineState.UNLOADED
    error: str | None = None
    """Why the last load failed (state `failed`), or why replacing its settings did not take."""
    health: EngineHealth = field(default_factory=EngineHealth)
    instance: Instance | None = None
    """The serving instance while loading, ready or draining."""
    started: bool = False
    """`engine` has been started once: loading again builds a fresh object."""
    reloading: bool = False
    """New settings are loading beside the serving instance."""
    retiring: list[Instance] = field(default_factory=list)
    """Instances replaced by a reload, draining before they stop."""
    task: asyncio.Task[None] | None = None
    """The load or unload in progress."""

    def describe(self, now: float) -> dict[str, Any]:
        """What `GET /v1/engines` shows of it (the caller adds fallbacks and the default flag)."""
        e = self.engine
        info = e.info
        speed = e.stats.recent_speed
        loaded = self.state in (EngineState.READY, EngineState.DRAINING)
        return {
            "name": self.name,
            "engine": self.kind or info.name,
            "state": self.state.value,
            "error": self.error,
            **self.health.describe(now),
            "device": info.capabilities.device,
            "sample_rate": info.sample_rate,
            "capabilities": {k: v for k, v in asdict(info.capabilities).items() if k != "device"},
            "voices": [v.id for v in info.voices],
            "default_voice": info.default_voice,
            "queue_depth": e.queue_depth if loaded else 0,
            "load": round(e.load, 3) if loaded else 0.0,
            "capacity": e.capacity,
            "recent_speed": None if speed is None else round(speed, 2),
            "contexts": sum(i.leases for i in (self.instance, *self.retiring) if i is not None),
            "reloading": self.reloading,
        }
