"""Earliest-deadline-first queue with O(log n) removal of cancelled entries.

Pure data structure (no I/O, no clock) so the ordering rules can be tested
exactly. Ties keep submission order.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(order=True)
class _Entry(Generic[T]):
    deadline: float
    seq: int
    item: T = field(compare=False)
    removed: bool = field(default=False, compare=False)


class DeadlineQueue(Generic[T]):
    """Items come out in deadline order; `remove` is lazy (tombstones)."""

    def __init__(self) -> None:
        self._heap: list[_Entry[T]] = []
        self._seq = itertools.count()
        self._live = 0

    def push(self, item: T, deadline: float) -> _Entry[T]:
        entry = _Entry(deadline, next(self._seq), item)
        heapq.heappush(self._heap, entry)
        self._live += 1
        return entry

    def remove(self, entry: _Entry[T]) -> None:
        if not entry.removed:
            entry.removed = True
            self._live -= 1

    def pop(self) -> T:
        while self._heap:
            entry = heapq.heappop(self._heap)
            if not entry.removed:
                entry.removed = True
                self._live -= 1
                return entry.item
        raise IndexError("pop from an empty DeadlineQueue")

    def peek_deadline(self) -> float | None:
        while self._heap and self._heap[0].removed:
            heapq.heappop(self._heap)
        return self._heap[0].deadline if self._heap else None

    def __len__(self) -> int:
        return self._live
