"""Adaptive chunk sizing from measured engine speed (EWMA) and buffered audio.

The rule (DESIGN.md): the next chunk must finish before the listener's buffer
runs dry. With `speed` = audio seconds produced per wall second (measured from
submission to completion, so queueing under load is included) and
`audio_per_char` = audio seconds per input character, a chunk of n characters
is ready after about n * audio_per_char / speed seconds. So

    n_max = safety * buffered_s * speed / audio_per_char

The first chunk is small (first clause or a few words) so audio starts early;
later chunks may grow by at most `growth` per step, since larger chunks use
the engine better and sound more natural. Pure logic: no clock, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..control.settings import PlannerSettings


@dataclass(frozen=True)
class ChunkPlan:
    min_chars: int
    max_chars: int
    force: bool
    """Cut at any word boundary now: the buffer is about to run dry."""


class Ewma:
    """Exponentially weighted moving average seeded with a prior."""

    def __init__(self, initial: float, alpha: float) -> None:
        self.value = initial
        self.alpha = alpha
        self.samples = 0

    def update(self, sample: float) -> float:
        self.value = sample if self.samples == 0 else self.alpha * sample + (1 - self.alpha) * self.value
        self.samples += 1
        return self.value


class ChunkPlanner:
    """Decides how much text to hand the engine next, per session."""

    def __init__(self, config: PlannerSettings, *, nominal_speed: float, audio_per_char_s: float) -> None:
        self.config = config
        self.speed = Ewma(nominal_speed, config.ewma_alpha)
        self.audio_per_char = Ewma(audio_per_char_s, config.ewma_alpha)
        self.chunks_planned = 0
        self._last_max = config.first_max_chars
        self._last_chars = 0

    def observe(self, *, chars: int, audio_s: float, wall_s: float) -> None:
        """Feed back one finished chunk: its length, audio produced and submit-to-done time."""
        if chars <= 0 or audio_s <= 0:
            return
        self.audio_per_char.update(audio_s / chars)
        self.speed.update(audio_s / max(wall_s, 1e-4))

    def predict_audio_s(self, chars: int) -> float:
        return chars * self.audio_per_char.value

    def predict_wall_s(self, chars: int) -> float:
        return self.predict_audio_s(chars) / self.speed.value

    def first_max_chars(self, load: float) -> int:
        """Ceiling for a chunk that must start playback; `load` = jobs running or waiting per worker.

        Under load a newcomer waits for a worker (jobs are not preemptible), so its own first
        chunk shrinks (towards `loaded_first_max_chars`) to keep time to first audio short.
        """
        cfg = self.config
        floor = min(cfg.loaded_first_max_chars, cfg.first_max_chars)
        return max(floor, int(cfg.first_max_chars / (1.0 + max(0.0, load))))

    def first_min_chars(self, load: float) -> int:
        """Floor for a first chunk: a lone "Sure," on an idle engine, more as workers fill up.

        A tiny first chunk gives the fastest first audio but little buffer; under load the next
        chunk waits for a worker, so the first must carry more audio to cover that wait.
        """
        cfg = self.config
        loaded = max(cfg.first_min_chars, min(cfg.loaded_first_max_chars, cfg.first_max_chars))
        return int(cfg.first_min_chars + (loaded - cfg.first_min_chars) * min(1.0, max(0.0, load)))

    def plan(self, buffered_s: float, *, low_latency: bool = False, load: float = 0.0) -> ChunkPlan:
        """Sizes for the next chunk given the audio already buffered ahead of the listener."""
        cfg = self.config
        if self.chunks_planned == 0 or buffered_s <= 0:
            # Nothing playing: get audio out as soon as possible.
            first_max = self.first_max_chars(load)
            return ChunkPlan(
                min(self.first_min_chars(load), first_max), first_max, force=self.chunks_planned > 0
            )
        affordable = cfg.safety * buffered_s * self.speed.value / self.audio_per_char.value
        grown = self._last_max * cfg.growth
        ceiling = cfg.first_max_chars if low_latency else cfg.max_chars
        # Under load a small buffer affords only a short chunk: go as low as a loaded first chunk
        # rather than cut one that cannot be ready before the listener runs dry.
        floor = min(cfg.loaded_first_max_chars, cfg.first_max_chars)
        max_chars = int(max(floor, min(affordable, grown, ceiling)))
        # The minimum grows with the chunks too: early in a context the text may still be trickling
        # in, and waiting for 40 characters and a clause would outlast a short first chunk.
        min_chars = int(
            min(cfg.min_chars, max_chars, max(cfg.first_min_chars, self._last_chars * cfg.growth))
        )
        # Running dry soon (less than one small chunk's synthesis time left): cut anywhere.
        force = buffered_s < 2 * self.predict_wall_s(cfg.first_max_chars)
        return ChunkPlan(min_chars, max_chars, force)

    def committed(self, plan: ChunkPlan, chars: int) -> None:
        """Record that a chunk of `chars` was cut under `plan` (growth is bounded from it)."""
        self.chunks_planned += 1
        self._last_max = max(plan.max_chars, chars)
        self._last_chars = chars
