"""Adaptive chunk sizing from measured engine speed (EWMA) and buffered audio.

The rule (DESIGN.md): the next chunk must finish before the listener's buffer
runs dry. With `speed` = audio seconds produced per wall second (measured from
submission to completion, so queueing under load is included) and `audio(n)` =
the audio a segment of n characters yields (`SegmentAudioModel`), a chunk is
ready after about audio(n) / speed seconds. So n_max is the largest n with

    audio(n) <= safety * buffered_s * speed

The first chunk is small (first clause or a few words) so audio starts early;
later chunks may grow by at most `growth` per step, since larger chunks use
the engine better and sound more natural. Pure logic: no clock, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..control.settings import PlannerSettings
from ..ewma import Ewma


@dataclass(frozen=True)
class ChunkPlan:
    min_chars: int
    max_chars: int
    force: bool
    """Cut at any word boundary now: the buffer is about to run dry."""


class SegmentAudioModel:
    """Predicts a segment's audio from its length: `base_s` per segment plus `per_char_s` per character.

    Engines add a near-constant stretch to every segment (Piper: ~0.3 s of lead-in and trailing
    silence), so a plain ratio of audio to characters, learnt on a context's short first segments,
    overestimates the long ones after them, and deadlines computed from it come too late. A least-squares
    line over observations that fade by `alpha` per sample, plus the engine's prior line at a fixed
    weight, which keeps the fit sane while every sample has about the same length.
    """

    PRIOR_CHARS = (20.0, 40.0)
    """Where the prior's pseudo-observations sit: close together, so they pin the level more than the
    slope (far-out points would lever the fit away from what the samples show)."""

    def __init__(self, base_s: float, per_char_s: float, *, alpha: float, prior_weight: float = 0.5) -> None:
        if per_char_s <= 0:
            raise ValueError("per_char_s must be > 0")
        self.alpha = alpha
        self.base_s = max(0.0, base_s)
        self.per_char_s = per_char_s
        self._prior = [0.0] * 5  # weight, Σx, Σx², Σy, Σxy
        for x in self.PRIOR_CHARS:
            self._add(self._prior, x, self.base_s + per_char_s * x, prior_weight / len(self.PRIOR_CHARS))
        self._data = [0.0] * 5

    @staticmethod
    def _add(sums: list[float], x: float, y: float, weight: float) -> None:
        for i, term in enumerate((1.0, x, x * x, y, x * y)):
            sums[i] += weight * term

    def update(self, chars: int, audio_s: float) -> None:
        self._data = [v * (1.0 - self.alpha) for v in self._data]
        self._add(self._data, float(chars), audio_s, 1.0)
        w, sx, sxx, sy, sxy = (p + d for p, d in zip(self._prior, self._data, strict=True))
        det = w * sxx - sx * sx
        if det <= 0:
            return
        slope = (w * sxy - sx * sy) / det
        base = (sy - slope * sx) / w
        if base < 0:  # a line through the origin fits better than a negative lead-in
            base, slope = 0.0, sxy / sxx
        if slope > 0:
            self.base_s, self.per_char_s = base, slope

    def predict(self, chars: int) -> float:
        return self.base_s + self.per_char_s * chars if chars > 0 else 0.0

    def chars_for(self, audio_s: float) -> float:
        """How many characters yield `audio_s` seconds (may be below 1: not even one segment fits)."""
        return (audio_s - self.base_s) / self.per_char_s


class ChunkPlanner:
    """Decides how much text to hand the engine next, per session."""

    def __init__(
        self,
        config: PlannerSettings,
        *,
        nominal_speed: float,
        audio_per_char_s: float,
        audio_per_segment_s: float = 0.0,
    ) -> None:
        self.config = config
        self.speed = Ewma(nominal_speed, config.ewma_alpha)
        self.audio = SegmentAudioModel(audio_per_segment_s, audio_per_char_s, alpha=config.ewma_alpha)
        self.chunks_planned = 0
        self._last_max = config.first_max_chars
        self._last_chars = 0

    def observe(self, *, chars: int, audio_s: float, wall_s: float) -> None:
        """Feed back one finished chunk: its length, audio produced and submit-to-done time."""
        if chars <= 0 or audio_s <= 0:
            return
        self.audio.update(chars, audio_s)
        self.speed.update(audio_s / max(wall_s, 1e-4))

    def predict_audio_s(self, chars: int) -> float:
        return self.audio.predict(chars)

    def predict_wall_s(self, chars: int) -> float:
        """Submission to completion, queueing included (the measured speed)."""
        return self.predict_audio_s(chars) / self.speed.value

    def predict_run_s(self, audio_s: float, engine_speed: float) -> float:
        """Synthesis alone, once a worker runs it: `audio_s` at the engine's own speed."""
        return audio_s / max(engine_speed, 1e-6)

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
        affordable = self.audio.chars_for(cfg.safety * buffered_s * self.speed.value)
        grown = self._last_max * cfg.growth
        ceiling = cfg.first_max_chars if low_latency else cfg.max_chars
        # Under load a small buffer affords only a short chunk: go as low as a loaded first chunk
        # rather than cut one that cannot be ready before the listener runs dry.
        floor = min(cfg.loaded_first_max_chars, cfg.first_max_chars)
        max_chars = int(max(floor, min(affordable, grown, ceiling)) + 1e-9)  # 49.999… is 50
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
