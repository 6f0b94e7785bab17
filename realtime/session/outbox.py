"""The ordered queue between a session and its transport's writer.

Events and audio frames leave in the order they were queued. Audio is
bounded (a reader that stops reading blocks the speaker, which pauses
synthesis); events are never blocked. On interruption, `purge` removes a
context's unsent audio so not one stale frame reaches the client, and returns
it so the caller can fade out what was about to play.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .config import OutputConfig


@dataclass(frozen=True)
class AudioFrame:
    pcm: np.ndarray
    """int16 mono at `output.sample_rate`; encoded by the writer at send time."""
    context_id: str
    output: OutputConfig

    @property
    def duration_s(self) -> float:
        return self.pcm.size / self.output.sample_rate


Outbound = dict[str, Any] | AudioFrame


class OutboxOverflow(Exception):
    pass


MAX_AUDIO_FRAMES = 64
"""Frames queued for the writer before the speaker waits (1.28 s of 20 ms frames)."""
MAX_AUDIO_S = 2.0
"""...and seconds: with `frame_ms` up to 1000, 64 frames alone would allow a minute of audio."""
MAX_EVENTS = 10_000
"""Events queued unsent before the client is deemed not to read them (`OutboxOverflow`)."""


class Outbox:
    def __init__(
        self, max_audio_frames: int = MAX_AUDIO_FRAMES, max_audio_s: float = MAX_AUDIO_S,
        max_events: int = MAX_EVENTS,
    ) -> None:  # fmt: skip
        self._items: deque[Outbound] = deque()
        self._audio = 0
        self._audio_s = 0.0
        self.max_audio_frames = max_audio_frames
        self.max_audio_s = max_audio_s
        self.max_events = max_events
        self._changed = asyncio.Event()
        self.closed = False

    @property
    def pending_audio_s(self) -> float:
        return self._audio_s

    @property
    def full(self) -> bool:
        return self._audio >= self.max_audio_frames or self._audio_s >= self.max_audio_s - 1e-9

    def __len__(self) -> int:
        return len(self._items)

    async def put_audio(self, frame: AudioFrame, dropped: Callable[[], bool] | None = None) -> bool:
        """Queue a frame, waiting while the writer is `max_audio_frames` or `max_audio_s` behind.

        `dropped` is checked after the wait: a context interrupted meanwhile must not get a
        frame queued behind its `speech.interrupted`. Returns whether the frame was queued.
        """
        while self.full and not self.closed:
            self._changed.clear()
            await self._changed.wait()
        if self.closed or (dropped is not None and dropped()):
            return False
        self._items.append(frame)
        self._audio += 1
        self._audio_s += frame.duration_s
        self._changed.set()
        return True

    def put_audio_now(self, frame: AudioFrame) -> None:
        """Queue a frame without waiting (the short fade that closes an interrupted context)."""
        if self.closed:
            return
        self._items.append(frame)
        self._audio += 1
        self._audio_s += frame.duration_s
        self._changed.set()

    def put_event(self, event: dict[str, Any]) -> None:
        if self.closed:
            return
        if len(self._items) - self._audio >= self.max_events:
            raise OutboxOverflow("the client is not reading its events")
        self._items.append(event)
        self._changed.set()

    def events(self) -> list[dict[str, Any]]:
        """The events still queued, in order (audio left out)."""
        return [item for item in self._items if isinstance(item, dict)]

    def purge(self, context_id: str) -> list[AudioFrame]:
        """Drop the unsent audio of `context_id`; returns it in order."""
        kept: deque[Outbound] = deque()
        dropped: list[AudioFrame] = []
        for item in self._items:
            if isinstance(item, AudioFrame) and item.context_id == context_id:
                dropped.append(item)
            else:
                kept.append(item)
        self._items = kept
        self._audio -= len(dropped)
        self._audio_s = max(0.0, self._audio_s - sum(f.duration_s for f in dropped))
        self._changed.set()
        return dropped

    async def get(self) -> Outbound | None:
        """Next item to send; None once closed and empty."""
        while not self._items:
            if self.closed:
                return None
            self._changed.clear()
            await self._changed.wait()
        item = self._items.popleft()
        if isinstance(item, AudioFrame):
            self._audio -= 1
            self._audio_s = max(0.0, self._audio_s - item.duration_s)
        self._changed.set()
        return item

    def close(self) -> None:
        self.closed = True
        self._changed.set()


def full_frame(pcm: np.ndarray, frame: int) -> np.ndarray:
    """Pad a short last frame with silence: every frame carries exactly `frame_ms` (telephony needs it)."""
    return pcm if pcm.size >= frame else np.concatenate([pcm, np.zeros(frame - pcm.size, np.int16)])
