"""Micro-batching by size or age: a batch closes at max_size items or max_wait after its first.

Pure: the clock is injected, so tests drive time by hand.
"""

import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Batcher(Generic[T]):
    def __init__(self, max_size: int, max_wait: float, clock: Callable[[], float] = time.monotonic) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        if max_wait < 0:
            raise ValueError("max_wait must not be negative")
        self.max_size = max_size
        self.max_wait = max_wait
        self._clock = clock
        self._items: list[T] = []
        self._opened = 0.0

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: T) -> None:
        if not self._items:
            self._opened = self._clock()
        self._items.append(item)

    def time_left(self) -> float | None:
        """Seconds until the open batch is due; None when nothing waits."""
        if not self._items:
            return None
        return max(0.0, self._opened + self.max_wait - self._clock())

    def ready(self) -> bool:
        return len(self._items) >= self.max_size or self.time_left() == 0.0

    def take(self) -> list[T]:
        """The oldest max_size items; what remains starts a new batch, aged from now."""
        batch, self._items = self._items[: self.max_size], self._items[self.max_size :]
        if self._items:
            self._opened = self._clock()
        return batch

    def drop(self, predicate: Callable[[T], bool]) -> list[T]:
        """Remove and return the waiting items that match (e.g. of revoked partitions)."""
        dropped = [i for i in self._items if predicate(i)]
        self._items = [i for i in self._items if not predicate(i)]
        return dropped
