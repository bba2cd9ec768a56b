"""WireDelivery: encoded batches to a remote destination, with retries, backoff and the spool.

On the destination's exporter thread:

1. A batch is encoded once; the bytes are what is sent, retried and spooled.
2. A failed attempt that is worth retrying (unreachable, timeout, 408/429/5xx) is retried up to
   ``max_retries`` times, waiting ``Retry-After`` when the destination gave one, else an
   exponential backoff with jitter, as long as a wait is short (``INLINE_WAIT_S``).
3. Then the batch goes to the spool, and the destination counts as down until ``resume_at``.
   While it is down, or while older batches wait in the spool, new batches join the spool
   behind them, so order is kept. :meth:`tick` probes with the oldest batch when due; once it
   is delivered the whole spool is re-sent, oldest first.
4. A refused batch (auth, 400...) is counted as failed and logged: resending cannot help.
5. Without room in the spool (or without a spool), the batch is dropped and counted.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from opentelemetry.sdk.trace import ReadableSpan

from or_middleware.export.deadline import closing_by
from or_middleware.export.spool import DiskSpool
from or_middleware.export.stats import PipelineStats
from or_middleware.export.transports import SendResult, Transport

if TYPE_CHECKING:  # the encoders module loads protobuf: only a destination that encodes imports it
    from or_middleware.export.encoders import SpanEncoding

logger = logging.getLogger(__name__)

INLINE_WAIT_S = 5.0  # longer waits are not slept on the exporter thread: the batch is spooled
FIRST_BACKOFF_S = 0.5
MAX_RETRY_AFTER_S = 3600.0  # a Retry-After is honoured up to an hour
REFUSAL_LOG_INTERVAL_S = 60.0


class WireDelivery:
    def __init__(
        self,
        name: str,
        encoding: SpanEncoding,
        transport: Transport,
        *,
        stats: PipelineStats,
        on_drop: Callable[[int, str], None],
        spool: DiskSpool | None = None,
        max_retries: int = 3,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.name = name
        self.encoding = encoding
        self.transport = transport
        self.spool = spool
        self._stats = stats
        self._on_drop = on_drop
        self._max_retries = max_retries
        self._max_backoff_s = max_backoff_s
        self._resume_at = 0.0  # monotonic time before which the destination counts as down
        self._failures = 0  # consecutive failed probes, for the backoff
        self._down_reason: str | None = None
        self._stopping = threading.Event()
        self._last_refusal_log = 0.0

    # -- the pipeline's calls -------------------------------------------------------------------

    def deliver(self, spans: Sequence[ReadableSpan]) -> None:
        count = len(spans)
        if self._has_backlog() or self._is_down():
            if self._nowhere_to_keep():  # a long outage: drop without paying for the encoding
                self._keep(None, count)
            else:
                self._keep(self.encoding.encode(spans), count)
            self.tick()
            return
        self._send_with_retries(self.encoding.encode(spans), count)

    def due_in(self) -> float | None:
        """Seconds until :meth:`tick` has work (a spooled batch to re-send), None when idle."""
        if not self._has_backlog():
            return None
        return max(0.0, self._resume_at - time.monotonic())

    def tick(self) -> None:
        """Re-send the spool, oldest first, when the destination is due to be tried again."""
        spool = self.spool
        if spool is None or self._is_down() or closing_by() is not None:
            return  # shutting down: the spool stays for the next start
        while not self._stopping.is_set():
            batch = spool.claim_oldest()
            if batch is None:
                return
            result = self.transport.send(batch.body)
            self._stats.add(retried=batch.spans)
            if result.delivered:
                spool.done(batch)
                self._stats.add(exported=batch.spans)
                self._came_back(spool)
            elif result.retryable:
                spool.release(batch)
                self._went_down(result)
                return
            else:
                spool.done(batch)
                self._refused(batch.spans, result)

    def probe(self, spans: Sequence[ReadableSpan]) -> SendResult:
        """One attempt, no retry, no spool (``or-middleware check``)."""
        return self.transport.send(self.encoding.encode(spans))

    def after_fork(self) -> None:
        self._stopping = threading.Event()  # the transport renews its connections by itself

    def pending_spans(self) -> int:
        return self.spool.pending_spans if self.spool is not None else 0

    def close(self) -> None:
        self._stopping.set()
        self.transport.close()

    # -- internals ------------------------------------------------------------------------------

    def _has_backlog(self) -> bool:
        return self.spool is not None and not self.spool.is_empty

    def _is_down(self) -> bool:
        return time.monotonic() < self._resume_at

    def _backoff(self, attempt: int) -> float:
        return min(self._max_backoff_s, FIRST_BACKOFF_S * 2**attempt) * random.uniform(0.8, 1.2)

    def _send_with_retries(self, body: bytes, count: int) -> None:
        attempt = 0
        while True:
            result = self.transport.send(body)
            if result.delivered:
                self._stats.add(exported=count)
                self._failures = 0
                return
            if not result.retryable:
                self._refused(count, result)
                return
            wait = result.retry_after if result.retry_after is not None else self._backoff(attempt)
            closing = closing_by()
            if (attempt >= self._max_retries or wait > INLINE_WAIT_S or self._stopping.is_set()
                    or (closing is not None and time.monotonic() + wait >= closing)):
                self._went_down(result)
                self._keep(body, count)
                return
            attempt += 1
            self._stats.add(retried=count)
            if self._stopping.wait(wait):
                self._keep(body, count)
                return

    def _nowhere_to_keep(self) -> bool:
        return self.spool is None or self.spool.is_full()

    def _keep(self, body: bytes | None, count: int) -> None:
        """Spool the batch; ``None``: it was not encoded, as neither the spool nor a send could take it."""
        if self.spool is None:
            self._on_drop(count, f"{self._down_reason or 'delivery failed'}; no spool configured")
        elif body is not None and self.spool.put(body, count):
            self._stats.add(spooled=count)
        else:
            self._on_drop(count, f"spool {self.spool.directory} is full ({self.spool.max_bytes} bytes)")

    def _went_down(self, result: SendResult) -> None:
        wait = result.retry_after if result.retry_after is not None else self._backoff(self._failures)
        self._failures += 1
        self._resume_at = time.monotonic() + min(wait, MAX_RETRY_AFTER_S)
        if self._down_reason is None:
            where = f"spooling to {self.spool.directory}" if self.spool is not None else "dropping (no spool)"
            logger.warning(
                "or_middleware: destination %s (%s) is not taking spans: %s; %s, next try in %.1fs",
                self.name, self.transport.target, result.reason, where, wait,
            )
        self._down_reason = result.reason

    def _came_back(self, spool: DiskSpool) -> None:
        self._failures = 0
        if self._down_reason is not None:
            logger.warning(
                "or_middleware: destination %s answers again; re-sending %d spooled span(s)",
                self.name, spool.pending_spans,
            )
            self._down_reason = None

    def _refused(self, count: int, result: SendResult) -> None:
        self._stats.add(failed=count)
        now = time.monotonic()
        if now - self._last_refusal_log >= REFUSAL_LOG_INTERVAL_S or not self._last_refusal_log:
            self._last_refusal_log = now
            logger.error(
                "or_middleware: destination %s (%s) refused %d span(s): %s (%d refused so far)",
                self.name, self.transport.target, count, result.reason, self._stats.failed,
            )
