"""The load-facing half of the `Engine` contract, for engines that admit jobs through one gate.

Every engine here admits its jobs through a `DeadlineGate` (directly, or inside a `WorkerPool`),
so `ready`, `queue_depth`, `load` and `capacity` read the same way in each: an engine class
inherits them and sets `gate` (and `_ready` once started) instead of writing four properties.
"""

from __future__ import annotations

from .admission import DeadlineGate


class GatedEngine:
    """Mixin: the scheduler-facing properties of an engine whose jobs pass `gate`."""

    gate: DeadlineGate
    _ready: bool = False

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def queue_depth(self) -> int:
        return self.gate.queue_depth

    @property
    def load(self) -> float:
        return self.gate.load

    @property
    def capacity(self) -> int:
        return self.gate.slots
