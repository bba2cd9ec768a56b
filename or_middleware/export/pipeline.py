"""DestinationPipeline: one destination's bounded queue and exporter thread.

The request path only calls :meth:`DestinationPipeline.on_end`, which is a scope check
and a non-blocking ``put``. Filtering, privacy, dialects and the network all happen on
the pipeline's own thread; a full queue drops (and counts) instead of blocking.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

logger = logging.getLogger(__name__)

SpanTransform = Callable[[Sequence[ReadableSpan]], Sequence[ReadableSpan]]
SpanPredicate = Callable[[ReadableSpan], bool]


@dataclass
class PipelineStats:
    """Counts since start; read with :func:`or_middleware.stats`."""

    queued: int = 0
    exported: int = 0
    filtered: int = 0
    failed: int = 0
    dropped: int = 0
    retried: int = 0
    spooled: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return {
                name: getattr(self, name)
                for name in ("queued", "exported", "filtered", "failed", "dropped", "retried", "spooled")
            }


class _Flush:
    """A marker in the queue: everything before it has been exported when ``done`` is set."""

    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()
_WARN_INTERVAL_S = 30.0


class DestinationPipeline(SpanProcessor):
    """Feeds one destination from a bounded queue on a daemon thread."""

    def __init__(
        self,
        name: str,
        exporter: SpanExporter,
        *,
        accepts: SpanPredicate,
        transform: SpanTransform | None = None,
        max_queue_size: int = 2048,
        schedule_delay_s: float = 1.0,
        max_batch_size: int = 512,
    ) -> None:
        self.name = name
        self.exporter = exporter
        self.stats = PipelineStats()
        self._accepts = accepts
        self._transform = transform
        self._max_queue_size = max_queue_size
        self._schedule_delay_s = schedule_delay_s
        self._max_batch_size = max_batch_size
        self._start_lock = threading.Lock()
        self._queue: queue.Queue[object] = queue.Queue(max_queue_size)
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._closed = False
        self._last_warning = 0.0

    # -- request path ---------------------------------------------------------------------

    def on_end(self, span: ReadableSpan) -> None:
        try:
            if self._closed or not self._accepts(span):
                return
            if self._thread is None or self._pid != os.getpid():
                self._start()
            self._queue.put_nowait(span)
            self.stats.add(queued=1)
        except queue.Full:
            self.stats.add(dropped=1)
            self._warn_dropped()
        except Exception:  # never let a destination break the app
            logger.exception("or_middleware: destination %s could not queue a span", self.name)

    def _warn_dropped(self) -> None:
        now = time.monotonic()
        if now - self._last_warning > _WARN_INTERVAL_S:
            self._last_warning = now
            logger.warning(
                "or_middleware: destination %s queue is full (%d); spans are being dropped (%d so far)",
                self.name,
                self._max_queue_size,
                self.stats.dropped,
            )

    def _start(self) -> None:
        with self._start_lock:
            if self._pid != os.getpid():  # forked child: the parent's thread and queue are not ours
                self._queue = queue.Queue(self._max_queue_size)
                self._thread = None
                self._pid = os.getpid()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"or_middleware-export-{self.name}", daemon=True
                )
                self._thread.start()

    # -- exporter thread ------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch: list[ReadableSpan] = []
            markers: list[object] = []
            deadline = time.monotonic() + self._schedule_delay_s
            while True:
                if isinstance(item, ReadableSpan):
                    batch.append(item)
                else:
                    markers.append(item)
                    break  # flush or stop: export now
                if len(batch) >= self._max_batch_size:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if batch:
                self._export(batch)
            for marker in markers:
                if isinstance(marker, _Flush):
                    marker.done.set()
                elif marker is _STOP:
                    return

    def _export(self, batch: list[ReadableSpan]) -> None:
        token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            spans = self._transform(batch) if self._transform else batch
            filtered = len(batch) - len(spans)
            if filtered:
                self.stats.add(filtered=filtered)
            if not spans:
                return
            result = self.exporter.export(spans)
            if result is SpanExportResult.SUCCESS:
                self.stats.add(exported=len(spans))
            else:
                self.stats.add(failed=len(spans))
        except Exception:
            self.stats.add(failed=len(batch))
            logger.exception("or_middleware: destination %s failed to export", self.name)
        finally:
            detach(token)

    # -- lifecycle ------------------------------------------------------------------------

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        if self._thread is None or self._pid != os.getpid():
            return True
        marker = _Flush()
        try:
            self._queue.put(marker, timeout=timeout_millis / 1000)
        except queue.Full:
            return False
        return marker.done.wait(timeout_millis / 1000)

    def shutdown(self) -> None:
        if self._closed:
            return
        self.force_flush(10_000)
        self._closed = True
        if self._thread is not None and self._pid == os.getpid():
            try:
                self._queue.put(_STOP, timeout=1)
                self._thread.join(timeout=5)
            except queue.Full:
                pass
        try:
            self.exporter.shutdown()
        except Exception:
            logger.exception("or_middleware: destination %s failed to shut down", self.name)
