"""GenerationAnalysis: each finished GenAI span is read once, on one background thread, before any destination.

The runtime's TracerProvider has this one span processor. On the request path ``on_end``
only appends the span to a deque (a GenAI span with a reference to its request's prompt fields,
which are never exported); the thread is woken only when the deque was empty, so a busy app
pays no lock and no wake-up per span. Every span takes the same queue, so each destination still gets spans in the
order they ended: a GenAI span before its request's server span, which per-trace decisions
(filter rules, sampling) rely on. For a GenAI span the analysis thread then
adds the prompt's hash (``or_middleware.prompt.sha256``: serialising a large prompt costs more
than parsing it, so it is not done on the request path), records the GenAI metrics, runs the
security detectors (each flag becomes a span event) and hands the span to every destination,
whose own threads apply privacy, dialects and export.
Doing this once, ahead of the destinations, means a span is counted once whatever the
number of destinations, and every destination (including the local store) sees the same
events; content in an event (a matched excerpt) is a content attribute, which privacy-mode
destinations drop like any other.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanLimits, SpanProcessor

from or_middleware.capture.live_span import LiveSpan
from or_middleware.export.deadline import closing_by, seconds_left
from or_middleware.prompts import PromptFields, prompt_sha256
from or_middleware.security import SecurityMonitor, signal_event
from or_middleware.spans import GENAI_SCOPE, PROMPT_SHA256

if TYPE_CHECKING:
    from opentelemetry import trace

    from or_middleware.capture.call import CallDescription
    from or_middleware.metrics import GenAIMetrics

logger = logging.getLogger(__name__)

_STOP = object()
_WARN_INTERVAL_S = 30.0
_POLL_S = 0.1
SPOOL_AFTER_DEADLINE_S = 0.5  # past the shutdown deadline: unsent batches are written to the spool


class _Flush:
    def __init__(self) -> None:
        self.done = threading.Event()


def _is_genai(span: ReadableSpan) -> bool:
    scope = span.instrumentation_scope
    return scope is not None and scope.name == GENAI_SCOPE


def _plain(span: ReadableSpan) -> tuple[dict[str, object] | None, Sequence[object], Sequence[object]]:
    """The span's attributes as a plain dict (None: keep the span's own), its events and links.

    The SDK hands ``on_end`` a span whose attributes sit behind a lock-guarded mapping read key by
    key in Python; every destination reads every key. Read here once, they are a dict every
    destination reads at C speed. Kept as they are when the SDK dropped some (limits), so the
    exported dropped counts stay right."""
    bounded = getattr(span, "_attributes", None)  # the SDK's own field: ReadableSpan has no raw accessor
    inner = getattr(bounded, "_dict", None)
    if bounded is None or isinstance(bounded, dict):
        attributes = bounded
    elif isinstance(inner, dict) and not getattr(bounded, "dropped", 0):
        attributes = inner  # immutable once the span ended: shared, never edited (drafts copy)
    else:
        attributes = None
    return attributes, span.events, span.links


def settled(span: ReadableSpan, extra: dict[str, object] | None = None, events: Sequence[object] = ()) -> ReadableSpan:
    """The span every destination gets: attributes in a plain dict, plus ``extra`` and ``events``."""
    if not extra and not events and isinstance(getattr(span, "_attributes", None), dict):
        return span  # already plain (a live span's finished form)
    attributes, own_events, links = _plain(span)
    if attributes is None:
        if not extra and not events:
            return span
        attributes = dict(span.attributes or {})
    if extra:
        attributes = {**attributes, **extra}
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=(*own_events, *events) if events else own_events,  # type: ignore[arg-type]
        links=links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class GenerationAnalysis(SpanProcessor):
    def __init__(
        self,
        destinations: Sequence[SpanProcessor],
        *,
        metrics: GenAIMetrics | None = None,
        security: SecurityMonitor | None = None,
        max_queue_size: int = 8192,
        span_limits: SpanLimits | None = None,
    ) -> None:
        self.destinations = list(destinations)
        self.span_limits = span_limits or SpanLimits()  # the provider's: what live spans are cut to
        self.metrics = metrics
        self.security = security
        self.unanalysed = 0  # spans passed on without analysis because the queue was full
        self._max_queue_size = max_queue_size
        # (span, its prompt, how to describe it: a live span's CallDescription, else None)
        self._spans: deque[tuple[Any, PromptFields | None, Any]] = deque()
        self._requests: deque[object] = deque()  # flush markers and the stop marker
        self._wake = threading.Event()
        self._prompts: dict[int, PromptFields] = {}
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._start_lock = threading.Lock()
        # Held while the analysis thread handles a span (metrics and pipelines take locks of their
        # own): a fork waits for it, so no child inherits a lock that thread held mid-span.
        self._fork_guard = threading.Lock()
        _live.add(self)
        self._closed = False
        self._last_warning = 0.0
        self._logged: set[tuple[str, str]] = set()

    # -- request path ---------------------------------------------------------------------

    def end_span(self, span: trace.Span, prompt: PromptFields | None) -> None:
        """End a GenAI span, handing ``on_end`` the prompt it was made from (in memory only)."""
        if prompt is None:
            span.end()
            return
        key = span.get_span_context().span_id
        self._prompts[key] = prompt
        try:
            span.end()
        finally:
            self._prompts.pop(key, None)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        for destination in self.destinations:
            try:
                destination.on_start(span, parent_context)
            except Exception:
                self._failed(destination, "on_start")

    def on_end(self, span: ReadableSpan) -> None:
        self._enqueue(span, self._prompts.get(span.context.span_id), None)

    def end_live(self, span: LiveSpan, description: CallDescription | None,
                 prompt: PromptFields | None) -> None:
        """A call's live span ended (capture/live_span.py): queued like any span, made into the
        finished span on the analysis thread from ``description``."""
        self._enqueue(span, prompt, description)

    def _enqueue(self, span: Any, prompt: PromptFields | None, description: Any) -> None:
        if self._closed:
            self._forward_finished(span, description)
            return
        try:
            if self._thread is None or self._pid != os.getpid():
                self._start()
            spans = self._spans
            if len(spans) >= self._max_queue_size:
                self.unanalysed += 1
                self._warn_full()
                # the destinations still get it, without hash, metrics or signals
                self._forward_finished(span, description)
                return
            idle = not spans
            spans.append((span, prompt, description))
            if idle:  # a busy app appends to a non-empty deque: no lock, no wake-up per span
                self._wake.set()
        except Exception:
            self._failed(self, "on_end")
            self._forward_finished(span, description)

    def _forward_finished(self, span: Any, description: Any) -> None:
        finished = self._finished(span, description)
        if finished is not None:
            self._forward(finished)

    def _finished(self, span: Any, description: Any) -> ReadableSpan | None:
        """A live span made into the finished span (its attributes from the call's description);
        any other span as it is. None: ours failed (logged once; the span is lost, nothing else)."""
        if not isinstance(span, LiveSpan):
            return span  # type: ignore[no-any-return]
        from or_middleware.capture.call import log_once

        attributes: dict[str, Any] = {}
        status = None
        try:
            if description is not None:
                attributes, status = description.attributes(with_server=True)
        except Exception:
            log_once("span attributes")
        try:
            return span.finished(attributes, self.span_limits, status)
        except Exception:
            log_once("finished span")
            return None

    def _forward(self, span: ReadableSpan) -> None:
        for destination in self.destinations:  # one failing destination must not starve the others
            try:
                destination.on_end(span)
            except Exception:
                self._failed(destination, "on_end")

    def _failed(self, destination: SpanProcessor, where: str) -> None:
        key = (type(destination).__name__, where)  # the same words as the runtime's ContainedProcessors
        if key not in self._logged:
            self._logged.add(key)
            logger.exception("or_middleware: internal error in %s.%s (the app is unaffected; logged once)", *key)

    def _warn_full(self) -> None:
        now = time.monotonic()
        if now - self._last_warning > _WARN_INTERVAL_S:
            self._last_warning = now
            logger.warning(
                "or_middleware: analysis queue is full (%d); spans go to destinations without metrics "
                "or security signals (%d so far)", self._max_queue_size, self.unanalysed,
            )

    def _reinit_in_child(self) -> None:
        self._fork_guard = threading.Lock()
        self._start_lock = threading.Lock()
        self._spans = deque()
        self._requests = deque()
        self._wake = threading.Event()
        self._thread = None
        self._pid = os.getpid()

    def _start(self) -> None:
        with self._start_lock:
            if self._pid != os.getpid():  # forked child: the parent's thread and queue are not ours
                self._spans = deque()
                self._requests = deque()
                self._wake = threading.Event()
                self._thread = None
                self._pid = os.getpid()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="or_middleware-analysis", daemon=True)
                self._thread.start()

    # -- analysis thread ------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            # The wake-up is only a hint (an append racing the end of a drain gets none), so the
            # thread also looks on its own every _POLL_S: a span waits here at most that long.
            self._wake.wait(_POLL_S)
            self._wake.clear()
            spans = self._spans
            while spans:  # everything appended so far, in order
                span, prompt, description = spans.popleft()
                with self._fork_guard:
                    if isinstance(span, LiveSpan):
                        span = self._finished(span, description)
                        if span is None:
                            continue
                    self._forward(self._analyse(span, prompt) if _is_genai(span) else self._settled(span))
            requests = self._requests
            while requests:
                request = requests.popleft()
                if request is _STOP:
                    return
                request.done.set()  # type: ignore[attr-defined]

    def _settled(self, span: ReadableSpan) -> ReadableSpan:
        try:
            return settled(span)
        except Exception:
            logger.exception("or_middleware: a span could not be read (it is exported as is)")
            return span

    def _analyse(self, span: ReadableSpan, prompt: PromptFields | None) -> ReadableSpan:
        try:
            span = settled(span, {PROMPT_SHA256: prompt_sha256(prompt)} if prompt is not None else None)
            signals = self.security.inspect(span, prompt) if self.security is not None else []
            if self.metrics is not None:
                self.metrics.record(span, [s.kind for s in signals])
            if signals:  # rare: the span is made once more, with its events
                at = span.end_time or span.start_time or time.time_ns()
                return settled(span, events=[signal_event(s, at) for s in signals])
        except Exception:
            logger.exception("or_middleware: analysis of a GenAI span failed (the span is exported as is)")
        return span

    # -- lifecycle ------------------------------------------------------------------------

    def _drain(self, timeout_millis: int) -> bool:
        """Wait until every span appended before now has been handed to the destinations."""
        if self._thread is None or self._pid != os.getpid():
            return True
        marker = _Flush()
        self._requests.append(marker)
        self._wake.set()
        return marker.done.wait(timeout_millis / 1000)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Everything ended so far reaches every destination within ``timeout_millis`` in all:
        the destinations flush at once, so their waits overlap instead of adding up."""
        deadline = time.monotonic() + timeout_millis / 1000
        flushed = self._drain(timeout_millis)
        pending = []
        for destination in self.destinations:
            request = getattr(destination, "request_flush", None)
            if request is None:
                flushed = destination.force_flush(int(seconds_left(deadline) * 1000)) and flushed
            else:
                pending.append(request())
        for done in pending:
            if done is not None and not done.wait(seconds_left(deadline)):
                flushed = False
        return flushed

    def shutdown(self) -> None:
        """Within the shutdown deadline (``export.deadline.closing``; else 10 s): hand over what is
        queued, then every destination sends what it can and spools the rest, all at once."""
        if self._closed:
            return
        deadline = closing_by() or time.monotonic() + 10.0
        handover = max(deadline, time.monotonic() + 0.1)  # our own queue: a matter of microseconds
        self._drain(int(seconds_left(handover) * 1000))
        self._closed = True
        if self._thread is not None and self._pid == os.getpid():
            self._requests.append(_STOP)
            self._wake.set()
            self._thread.join(seconds_left(handover))
        for destination in self.destinations:
            begin = getattr(destination, "begin_shutdown", None)
            if begin is not None:
                begin()
        for destination in self.destinations:
            try:
                finish = getattr(destination, "finish_shutdown", None)
                if finish is not None:
                    finish(max(deadline, time.monotonic()) + SPOOL_AFTER_DEADLINE_S)  # sends end by the deadline
                else:
                    destination.shutdown()
            except Exception:
                logger.exception("or_middleware: a destination failed to shut down")


# -- fork safety (gunicorn --preload forks a master that may already be exporting) ------------------

_live: weakref.WeakSet[GenerationAnalysis] = weakref.WeakSet()
_held: list[GenerationAnalysis] = []


def _before_fork() -> None:
    _held[:] = list(_live)
    for analysis in _held:
        analysis._fork_guard.acquire()


def _after_fork_in_parent() -> None:
    for analysis in _held:
        analysis._fork_guard.release()
    _held.clear()


def _after_fork_in_child() -> None:
    for analysis in {*_held, *_live}:
        analysis._reinit_in_child()
    _held.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)
