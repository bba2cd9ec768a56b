"""PipelineStats: one destination's counts since start, read with :func:`or_middleware.stats`."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

logger = logging.getLogger("or_middleware.export")

COUNTS = ("queued", "exported", "filtered", "sampled_out", "failed", "dropped", "retried", "spooled")


@dataclass
class PipelineStats:
    """Span counts (a batch of 10 retried twice adds 20 to ``retried``).

    - ``queued``: accepted from the app; ``exported``: delivered (also from the spool)
    - ``filtered`` / ``sampled_out``: left out by FILTER rules / SAMPLE_RATE
    - ``failed``: refused by the destination (auth, bad request) or not encodable
    - ``dropped``: lost to a bound: queue full, spool full or no spool
    - ``retried``: retries after a failed send, and sends from the spool
    - ``spooled``: written to the disk spool
    - ``spool_pending``: spans in the spool now, waiting for the destination
    """

    queued: int = 0
    exported: int = 0
    filtered: int = 0
    sampled_out: int = 0
    failed: int = 0
    dropped: int = 0
    retried: int = 0
    spooled: int = 0
    pending: Callable[[], int] | None = field(default=None, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def reset_lock(self) -> None:
        """After a fork: the lock may have been held by a thread that does not exist in the child."""
        self._lock = threading.Lock()

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            out = {name: getattr(self, name) for name in COUNTS}
        out["spool_pending"] = self.pending() if self.pending is not None else 0
        return out


class DropCounter:
    """Counts spans lost to a bound and says so in the log, at most every 30 seconds."""

    def __init__(self, destination: str, stats: PipelineStats, interval_s: float = 30.0) -> None:
        self._destination = destination
        self._stats = stats
        self._interval_s = interval_s
        self._last_warning = 0.0

    def __call__(self, count: int, why: str) -> None:
        self._stats.add(dropped=count)
        now = time.monotonic()
        if not self._last_warning or now - self._last_warning > self._interval_s:
            self._last_warning = now
            logger.warning(
                "or_middleware: destination %s is dropping spans: %s (%d dropped so far)",
                self._destination, why, self._stats.dropped,
            )
