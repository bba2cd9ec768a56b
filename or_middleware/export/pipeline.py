"""DestinationPipeline: one destination's bounded queue and exporter thread.

The request path only calls :meth:`DestinationPipeline.on_end`: a scope check and a
``deque.append`` (no lock, no thread wake-up: the exporter thread wakes on its schedule, or
early when a full batch is waiting, as the SDK's batch processor does). Selection, privacy,
redaction, dialects, encoding, the network, retries and the spool all happen on the
pipeline's own thread; a full queue drops (and counts) instead of blocking.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from or_middleware.export.deadline import closing_by, seconds_left
from or_middleware.export.preparation import SpanPreparation
from or_middleware.export.sinks import SpanSink
from or_middleware.export.stats import DropCounter, PipelineStats

__all__ = ["DestinationPipeline", "PipelineStats", "SpanPredicate"]

logger = logging.getLogger(__name__)

SpanPredicate = Callable[[ReadableSpan], bool]


class _Flush:
    """A request: everything queued before it has been handled when ``done`` is set."""

    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()
_queue_failures_logged: set[str] = set()
_failures_logged: set[tuple[str, str]] = set()


def _log_once(destination: str, what: str) -> None:
    """Log the exception being handled, once per destination and place: a bug of ours on the
    exporter thread repeats with every batch, and its spans are counted (``failed``) anyway."""
    if (destination, what) not in _failures_logged:
        _failures_logged.add((destination, what))
        logger.exception("or_middleware: destination %s %s (logged once; its spans count as failed)",
                         destination, what)
_live_pipelines: weakref.WeakSet[DestinationPipeline] = weakref.WeakSet()


def _reset_pipelines_in_child() -> None:
    for pipeline in list(_live_pipelines):
        pipeline._after_fork()


os.register_at_fork(after_in_child=_reset_pipelines_in_child)


class DestinationPipeline(SpanProcessor):
    """Feeds one destination from a bounded queue on a daemon thread."""

    def __init__(
        self,
        name: str,
        sink: SpanSink,
        *,
        stats: PipelineStats,
        drops: DropCounter,
        accepts: SpanPredicate,
        preparation: SpanPreparation,
        max_queue_size: int = 2048,
        schedule_delay_s: float = 1.0,
        max_batch_size: int = 512,
    ) -> None:
        self.name = name
        self.sink = sink
        self.stats = stats
        self.drops = drops
        self.preparation = preparation
        self._accepts = accepts
        self._max_queue_size = max_queue_size
        self._schedule_delay_s = schedule_delay_s
        self._max_batch_size = max_batch_size
        self._start_lock = threading.Lock()
        self._spans: deque[ReadableSpan] = deque()
        self._requests: deque[object] = deque()  # flush markers and the stop marker
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._closed = False
        stats.pending = sink.pending_spans
        _live_pipelines.add(self)

    # -- request path ---------------------------------------------------------------------

    def on_end(self, span: ReadableSpan) -> None:
        try:
            if self._closed or not self._accepts(span):
                return
            if self._thread is None or self._pid != os.getpid():
                self.start()
            spans = self._spans
            if len(spans) >= self._max_queue_size:
                self.drops(1, f"queue is full ({self._max_queue_size})")
                return
            spans.append(span)
            self.stats.add(queued=1)
            if len(spans) >= self._max_batch_size:
                self._wake.set()  # a full batch is waiting: export it now
        except Exception:  # never let a destination break the app
            if self.name not in _queue_failures_logged:  # once per destination: this runs for every span
                _queue_failures_logged.add(self.name)
                logger.exception("or_middleware: destination %s could not queue a span (logged once)", self.name)

    def _after_fork(self) -> None:
        """In a forked child: the parent's exporter thread does not exist here, and any lock it
        held at the fork (queue, stats, sink) would stay held forever; start from fresh ones."""
        self._start_lock = threading.Lock()
        self._spans = deque()
        self._requests = deque()
        self._wake = threading.Event()
        self._thread = None
        self._pid = os.getpid()
        self.stats.reset_lock()
        self.sink.after_fork()

    def start(self) -> None:
        """Start the exporter thread (done lazily on the first span, or at once when a spool
        left by an earlier run is waiting to be re-sent)."""
        with self._start_lock:
            if self._pid != os.getpid():  # forked child: the parent's thread and queue are not ours
                self._spans = deque()
                self._requests = deque()
                self._wake = threading.Event()
                self._thread = None
                self._pid = os.getpid()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"or_middleware-export-{self.name}", daemon=True
                )
                self._thread.start()

    # -- exporter thread ------------------------------------------------------------------

    def _run(self) -> None:
        token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))  # our own sends are not traced
        try:
            self._loop()
        finally:
            detach(token)

    def _loop(self) -> None:
        while True:
            self._wake.wait(self._next_wait())
            self._wake.clear()
            requests = self._take_requests()  # taken first: every span queued before them goes now
            try:
                self._drain()
                self._tick()
            except Exception:  # the thread must outlive any bug of ours, or the destination goes silent
                _log_once(self.name, "pipeline error")
            for request in requests:
                if isinstance(request, _Flush):
                    request.done.set()
                elif request is _STOP:
                    return

    def _next_wait(self) -> float:
        """The schedule delay (as the SDK's batch processor: at most one wake-up per delay when
        idle), or sooner when the spool has a re-send due."""
        try:
            due = self.sink.due_in()
        except Exception:
            due = None
        return self._schedule_delay_s if due is None else max(0.0, min(self._schedule_delay_s, due))

    def _take_requests(self) -> list[object]:
        taken = []
        while self._requests:
            taken.append(self._requests.popleft())
        return taken

    def _drain(self) -> None:
        spans = self._spans
        while spans:
            batch = [spans.popleft() for _ in range(min(len(spans), self._max_batch_size))]
            self._export(batch)

    def _export(self, batch: list[ReadableSpan]) -> None:
        try:
            selected = self.preparation.prepare(batch)
            if selected.filtered or selected.sampled_out:
                self.stats.add(filtered=selected.filtered, sampled_out=selected.sampled_out)
            if selected.spans:
                self.sink.deliver(selected.spans)
        except Exception:
            self.stats.add(failed=len(batch))
            _log_once(self.name, "failed to export")

    def _tick(self) -> None:
        try:
            self.sink.tick()
        except Exception:
            _log_once(self.name, "failed to re-send its spool")

    # -- lifecycle ------------------------------------------------------------------------

    def request_flush(self) -> threading.Event | None:
        """Ask the thread to handle everything queued so far; the event is set once it has
        (None: no thread here, nothing queued). Several pipelines flush at once this way."""
        if self._thread is None or self._pid != os.getpid():
            return None
        marker = _Flush()
        self._requests.append(marker)
        self._wake.set()
        return marker.done

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        done = self.request_flush()
        return done is None or done.wait(timeout_millis / 1000)

    def begin_shutdown(self) -> None:
        """Take no more spans; the thread handles what is queued (each send bounded by the shutdown
        deadline, what cannot be sent goes to the spool), then stops."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None and self._pid == os.getpid():
            self._requests.append(_STOP)
            self._wake.set()

    def finish_shutdown(self, deadline: float) -> None:
        """Wait for the thread until ``deadline`` (monotonic seconds), then close the sink."""
        if self._thread is not None and self._pid == os.getpid():
            self._thread.join(seconds_left(deadline))
        try:
            self.sink.close()
        except Exception:
            logger.exception("or_middleware: destination %s failed to shut down", self.name)

    def shutdown(self) -> None:
        deadline = closing_by() or time.monotonic() + 10.0
        self.begin_shutdown()
        self.finish_shutdown(deadline)
