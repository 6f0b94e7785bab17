"""Earliest-deadline-first wait list whose deadlines may move while items wait.

A waiting job's deadline moves when its session learns more (a job ahead of it
yielded less audio than predicted, or the listener ran dry), so each deadline is
read when the next item is chosen, not when it was pushed. Choosing scans the
list: it holds a few jobs per session, and a scan is cheaper than the heap
bookkeeping a moving key would need. Pure (no I/O, no clock); ties keep
submission order.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

Deadline = Callable[[], float]
"""Reads an item's current deadline."""


class DeadlineQueue(Generic[T]):
    """Items come out in order of their deadlines as they are when popped."""

    def __init__(self) -> None:
        self._entries: dict[int, tuple[T, Deadline]] = {}
        self._seq = itertools.count()

    def push(self, item: T, deadline: Deadline) -> int:
        """Add `item`; returns a key for `remove`."""
        key = next(self._seq)
        self._entries[key] = (item, deadline)
        return key

    def remove(self, key: int) -> None:
        """Forget an item (idempotent)."""
        self._entries.pop(key, None)

    def _earliest(self) -> int:
        return min(self._entries, key=lambda k: (self._entries[k][1](), k))

    def pop(self) -> T:
        if not self._entries:
            raise IndexError("pop from an empty DeadlineQueue")
        return self._entries.pop(self._earliest())[0]

    def __len__(self) -> int:
        return len(self._entries)
