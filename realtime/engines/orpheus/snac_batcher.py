"""One SNAC model shared by every Orpheus session: pending windows decoded in batches.

`SnacBatcher` groups pending windows by frame count and decodes each group in
one call. It does not pad: padding codes are not silence, and the non-causal
convolutions would carry padded content into the window's edge, so a padded
window would not decode to the audio it decodes to alone.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .snac_model import Levels, decode_windows, model_device

logger = logging.getLogger(__name__)


@dataclass
class _Request:
    levels: Levels
    start_frame: int
    future: asyncio.Future[np.ndarray]
    loop: asyncio.AbstractEventLoop
    submitted: float


@dataclass
class BatcherStats:
    batches: int = 0
    windows: int = 0
    frames: int = 0
    skipped_cancelled: int = 0
    errors: int = 0
    busy_s: float = 0.0

    @property
    def mean_batch(self) -> float:
        return self.windows / self.batches if self.batches else 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "batches": self.batches,
            "windows": self.windows,
            "frames": self.frames,
            "skipped_cancelled": self.skipped_cancelled,
            "errors": self.errors,
            "busy_s": round(self.busy_s, 4),
            "mean_batch": round(self.mean_batch, 3),
        }


_STOP = object()


def _resolve(
    future: asyncio.Future[np.ndarray], audio: np.ndarray | None, error: BaseException | None
) -> None:
    if future.done():  # cancelled while its batch was decoding
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(audio)  # type: ignore[arg-type]


class SnacBatcher:
    """One SNAC model shared by every session; worker threads decode pending windows in batches.

    A worker takes what is queued (waiting at most `max_wait_ms` after the first
    request for more, up to `max_batch` windows), groups it by window length,
    decodes each group in one call and resolves each caller's future with exactly
    its own audio. While a batch decodes, new requests queue up, so under load
    batches fill without any waiting.

    `torch_threads` is set on each worker thread (None leaves torch's default).
    One thread per worker, and `workers` for more cores, is the default because on
    CPUs that layout measured fastest (loadtest/bench_snac.py --sweep): conv calls
    of this size scale poorly across threads, and spinning OpenMP threads collapse
    when other work shares the cores. `max_batch` defaults to 1 on CPUs: there a
    decode is compute-bound, per-frame cost only grows with the batch (+4% at 2
    windows, +20% at 8, x2 at 16 as activations overflow the caches), so CPUs scale
    with `workers`, not batches. On CUDA it defaults to 16: a decode call costs
    about the same for one window or many.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        max_batch: int | None = None,
        max_wait_ms: float = 2.0,
        workers: int = 1,
        torch_threads: int | None = 1,
        name: str = "snac-batcher",
    ) -> None:
        if max_batch is None:
            max_batch = 16 if model_device(model).type == "cuda" else 1
        if max_batch < 1 or workers < 1:
            raise ValueError("max_batch and workers must be at least 1")
        self.model = model
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self.workers = workers
        self.torch_threads = torch_threads
        self.name = name
        self.stats = BatcherStats()
        self._stats_lock = threading.Lock()
        self._queue: queue.Queue[Any] = queue.Queue()
        self._threads: list[threading.Thread] = []

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def start(self) -> None:
        if self._threads:
            return
        for i in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"{self.name}-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    async def stop(self) -> None:
        """Stop the workers after the batches in progress; requests still queued fail with CancelledError."""
        threads, self._threads = self._threads, []
        if not threads:
            return
        for _ in threads:
            self._queue.put(_STOP)
        for thread in threads:
            await asyncio.to_thread(thread.join)
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Request):
                item.loop.call_soon_threadsafe(item.future.cancel)

    async def decode(self, levels: Levels, start_frame: int = 0) -> np.ndarray:
        """Audio for one window (`levels` of F frames starting at `start_frame` of its stream): F * 2048 samples."""
        if not self.running:
            raise RuntimeError("SnacBatcher is not running: call start()")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._queue.put(_Request(levels, start_frame, future, loop, time.perf_counter()))
        return await future

    # -- worker thread

    def _collect(self) -> list[_Request] | None:
        first = self._queue.get()
        if first is _STOP:
            return None
        batch = [first]
        deadline = time.perf_counter() + self.max_wait_s
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if item is _STOP:
                self._queue.put(_STOP)  # finish this batch, then stop
                break
            batch.append(item)
        return batch

    def _work(self) -> None:
        if self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        while True:
            batch = self._collect()
            if batch is None:
                return
            groups: dict[int, list[_Request]] = {}
            for request in batch:
                if request.future.cancelled():
                    with self._stats_lock:
                        self.stats.skipped_cancelled += 1
                    continue
                groups.setdefault(request.levels[0].shape[0], []).append(request)
            for frames, group in groups.items():
                self._decode_group(frames, group)

    def _decode_group(self, frames: int, group: list[_Request]) -> None:
        started = time.perf_counter()
        try:
            audio = decode_windows(self.model, [(r.levels, r.start_frame) for r in group])
        except Exception as exc:  # one bad batch must not kill the shared worker
            logger.exception("SNAC batch of %d windows failed", len(group))
            with self._stats_lock:
                self.stats.errors += 1
                self.stats.busy_s += time.perf_counter() - started
            for r in group:
                r.loop.call_soon_threadsafe(_resolve, r.future, None, exc)
            return
        with self._stats_lock:
            self.stats.busy_s += time.perf_counter() - started
            self.stats.batches += 1
            self.stats.windows += len(group)
            self.stats.frames += frames * len(group)
        for r, samples in zip(group, audio, strict=True):
            r.loop.call_soon_threadsafe(_resolve, r.future, samples, None)
