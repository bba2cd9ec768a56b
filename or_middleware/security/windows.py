"""Small bounded state for the security detectors: LRU maps, rolling medians, sliding windows."""

from __future__ import annotations

from bisect import bisect_left, insort
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
    """Median of the last ``size`` values (``statistics.median``'s), read once per call: the values
    are also kept sorted, so it is read in O(1) instead of sorting the window every time."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._values: deque[float] = deque()  # arrival order: the oldest leaves first
        self._sorted: list[float] = []

    def __len__(self) -> int:
        return len(self._values)

    def add(self, value: float) -> None:
        if len(self._values) >= self._size:
            oldest = self._values.popleft()
            del self._sorted[bisect_left(self._sorted, oldest)]
        self._values.append(value)
        insort(self._sorted, value)

    def median(self) -> float | None:
        values = self._sorted
        n = len(values)
        if not n:
            return None
        middle = n // 2
        return values[middle] if n % 2 else (values[middle - 1] + values[middle]) / 2


class WindowCount:
    """How many events in the last ``seconds``, counted up to ``cap``: a detector only needs to
    know that a threshold was passed, so a busy user's window never grows with the rate."""

    def __init__(self, seconds: float, cap: int) -> None:
        self._seconds = seconds
        self._times: deque[float] = deque(maxlen=cap)

    def add(self, at: float) -> int:
        self._times.append(at)
        horizon = at - self._seconds
        while self._times and self._times[0] <= horizon:
            self._times.popleft()
        return len(self._times)


class DistinctInWindow:
    """The distinct values seen in the last ``seconds``, at most ``cap`` of them (the most recent)."""

    def __init__(self, seconds: float, cap: int) -> None:
        self._seconds = seconds
        self._cap = cap
        self._last_seen: OrderedDict[str, float] = OrderedDict()

    def add(self, at: float, value: str) -> list[str]:
        self._last_seen.pop(value, None)
        self._last_seen[value] = at
        horizon = at - self._seconds
        while self._last_seen and (next(iter(self._last_seen.values())) <= horizon or len(self._last_seen) > self._cap):
            self._last_seen.popitem(last=False)
        return list(self._last_seen)
