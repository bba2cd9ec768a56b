"""Process memory for leak and bound checks: RSS, its peak during a call, and thread count (Linux /proc)."""

from __future__ import annotations

import threading
import tracemalloc
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


def rss_bytes() -> int:
    return _status_kb("VmRSS") * 1024


def peak_growth(run: Callable[[], T]) -> tuple[T, int]:
    """``run()``'s result and how far the process's resident memory rose above its level
    before the call, at the highest point during it (the kernel's high-water mark, reset
    first). Falls back to tracemalloc's peak where /proc/self/clear_refs is not writable."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # reset VmHWM to the current RSS
    except OSError:
        tracemalloc.start()
        try:
            result = run()
            return result, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    before = rss_bytes()
    result = run()
    return result, _status_kb("VmHWM") * 1024 - before


def thread_names() -> list[str]:
    return sorted(t.name for t in threading.enumerate())
