"""An exponentially weighted moving average: the one smoother the schedulers share."""

from __future__ import annotations


class Ewma:
    """Exponentially weighted moving average seeded with a prior; the first sample replaces the prior."""

    def __init__(self, initial: float, alpha: float) -> None:
        self.value = initial
        self.alpha = alpha
        self.samples = 0

    def update(self, sample: float) -> float:
        self.value = sample if self.samples == 0 else self.alpha * sample + (1 - self.alpha) * self.value
        self.samples += 1
        return self.value
