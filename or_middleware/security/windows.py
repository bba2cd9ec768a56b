"""Small bounded state for the security detectors: LRU maps, rolling medians, sliding windows."""

from __future__ import annotations

import statistics
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedMap(Generic[K, V]):
    """A dict that keeps only the ``capacity`` most recently used keys (users, routes)."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K, create: Callable[[], V]) -> V:
        item = self._items.get(key)
        if item is None:
            item = self._items[key] = create()
            if len(self._items) > self._capacity:
                self._items.popitem(last=False)
        else:
            self._items.move_to_end(key)
        return item

    def __len__(self) -> int:
        return len(self._items)


class RollingMedian:
    """Median of the last ``size`` values."""

    def __init__(self, size: int) -> None:
        self._values: deque[float] = deque(maxlen=size)

    def __len__(self) -> int:
        return len(self._values)

    def add(self, value: float) -> None:
        self._values.append(value)

    def median(self) -> float | None:
        return statistics.median(self._values) if self._values else None


class SlidingWindow(Generic[V]):
    """Values seen in the last ``seconds`` (by the time each one happened)."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._items: deque[tuple[float, V]] = deque()

    def add(self, at: float, value: V) -> list[V]:
        """Add one value; returns every value still inside the window ending at ``at``."""
        self._items.append((at, value))
        horizon = at - self._seconds
        while self._items and self._items[0][0] <= horizon:
            self._items.popleft()
        return [v for _, v in self._items]
