"""TracingRuntime: one middleware's private TracerProvider, destination pipelines and LLM endpoints.

We never touch the global TracerProvider: the app's own OpenTelemetry setup (if any) is left
exactly as it is, and our destinations receive only what flows through our provider.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, SynchronousMultiSpanProcessor, TracerProvider
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.trace import Tracer

from or_middleware.analysis import SPOOL_AFTER_DEADLINE_S, GenerationAnalysis
from or_middleware.capture.detection import EndpointDetector
from or_middleware.config import Settings
from or_middleware.export.deadline import closing, seconds_left
from or_middleware.export.destinations import build_pipeline
from or_middleware.export.pipeline import DestinationPipeline
from or_middleware.metrics import build_metrics
from or_middleware.security import SecurityMonitor
from or_middleware.spans import GENAI_SCOPE
from or_middleware.version import __version__

logger = logging.getLogger(__name__)


class ContainedProcessors(SynchronousMultiSpanProcessor):
    """Our provider's span processors, each one contained. The SDK calls processors from
    ``start_span`` and ``span.end()`` without a guard, and those run inside the app's request
    (the server span ends in the ASGI/WSGI middleware, a GenAI span when the app's stream ends):
    a bug in one of ours is logged once per processor and place, never raised into the app."""

    _logged: ClassVar[set[tuple[str, str]]] = set()

    def _failed(self, processor: SpanProcessor, where: str) -> None:
        key = (type(processor).__name__, where)
        if key not in self._logged:
            self._logged.add(key)
            logger.exception("or_middleware: internal error in %s.%s (the app is unaffected; logged once)", *key)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        for processor in self._span_processors:
            try:
                processor.on_start(span, parent_context=parent_context)
            except Exception:
                self._failed(processor, "on_start")

    def _on_ending(self, span: Span) -> None:
        for processor in self._span_processors:
            try:
                processor._on_ending(span)  # type: ignore[attr-defined]
            except Exception:
                self._failed(processor, "_on_ending")

    def on_end(self, span: ReadableSpan) -> None:
        for processor in self._span_processors:
            try:
                processor.on_end(span)
            except Exception:
                self._failed(processor, "on_end")


class TracingRuntime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.capture_content = settings.captures_content
        self.detector = EndpointDetector(settings.llm_hosts, settings.detect)
        resource = Resource.create({"service.name": settings.resolved_service_name})
        self.tracer_provider = TracerProvider(resource=resource, active_span_processor=ContainedProcessors())
        destinations = settings.destination_settings()
        shared: dict[tuple[object, ...], Any] = {}  # destinations configured alike prepare each span once
        self.pipelines: list[DestinationPipeline] = [build_pipeline(dest, settings, shared) for dest in destinations]
        # Metrics on a MeterProvider of our own (never the global one); None when no destination takes them.
        self.metrics = build_metrics(settings, resource)
        security = settings.security
        # The provider's one processor: GenAI spans are analysed once (metrics, security signals)
        # on a background thread, then every span goes on to each destination pipeline.
        self.analysis = GenerationAnalysis(
            self.pipelines,
            metrics=self.metrics.instruments if self.metrics else None,
            security=SecurityMonitor(security, self.capture_content) if security.enabled else None,
            span_limits=getattr(self.tracer_provider, "_span_limits", None),
        )
        self.tracer_provider.add_span_processor(self.analysis)
        # A destination with SPANS=all or SPANS=traces exports server spans; SPANS=genai ones never do.
        self._destinations_see_server_spans = any(dest.span_scope != "genai" for dest in destinations)
        self.tracer: Tracer = self.tracer_provider.get_tracer(GENAI_SCOPE, __version__)
        _register(self)

    def records_directly(self) -> bool:
        """True when no span processor but our analysis stage would see a GenAI span before it
        ends (no test capture; no app provider to forward to): the request path then keeps a live
        span instead of an SDK span (capture/live_span.py). Asked once per LLM call."""
        return isinstance(self.tracer, SdkTracer) and not self._others_want_spans()

    def wants_server_spans(self) -> bool:
        """Would a server span started now reach anyone? A destination that exports server spans,
        or another processor on our provider (the app's own provider, a test capture) that does
        not say otherwise. Asked once per request that makes an LLM call."""
        return self._destinations_see_server_spans or self._others_want_spans()

    def _others_want_spans(self) -> bool:
        """Another processor on our provider wants spans (``wants_spans()``; one that cannot say does)."""
        processors = getattr(self.tracer_provider._active_span_processor, "_span_processors", None)
        if processors is None:  # an SDK without the attribute: assume someone looks
            return True
        for processor in processors:
            if processor is not self.analysis:
                wants = getattr(processor, "wants_spans", None)
                if wants is None or wants():
                    return True
        return False

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._flush_until(time.monotonic() + timeout_millis / 1000)

    def _flush_until(self, deadline: float) -> bool:
        flushed = self.analysis.force_flush(int(seconds_left(deadline) * 1000))  # and every pipeline, at once
        if self.metrics is not None:
            flushed = self.metrics.force_flush(int(seconds_left(deadline) * 1000)) and flushed
        return flushed

    def flush_for_shutdown(self) -> bool:
        """The ASGI lifespan shutdown: flush within ``OR_MIDDLEWARE_SHUTDOWN_BUDGET_S``, whatever the
        number of destinations; what cannot be sent by then is spooled. The exit that follows
        shares this budget (see :func:`_shutdown_at_exit`)."""
        global _exit_deadline
        deadline = _exit_deadline = time.monotonic() + self.settings.shutdown_budget_s
        with closing(deadline):  # sends end by the deadline; then a moment to spool what they could not send
            return self._flush_until(deadline + SPOOL_AFTER_DEADLINE_S)

    def shutdown(self, deadline: float | None = None) -> None:
        """Stop, sending what is queued by ``deadline`` (default: the shutdown budget from now)."""
        _unregister(self)
        if deadline is None:
            deadline = time.monotonic() + self.settings.shutdown_budget_s
        with closing(deadline):
            self.tracer_provider.shutdown()  # the analysis, then every pipeline at once, by the deadline
            if self.metrics is not None:
                self.metrics.shutdown(int(seconds_left(deadline) * 1000))

    def stats(self) -> dict[str, dict[str, int]]:
        return {p.name: p.stats.as_dict() for p in self.pipelines}


_lock = threading.Lock()
_runtimes: list[TracingRuntime] = []
_atexit_registered = False
_exit_deadline: float | None = None  # set by a lifespan shutdown: the exit shares its budget


# Called with each new runtime (or_middleware.testing attaches its in-memory capture this way).
_observers: list[Callable[[TracingRuntime], None]] = []


def add_runtime_observer(observer: Callable[[TracingRuntime], None]) -> None:
    with _lock:
        _observers.append(observer)


def remove_runtime_observer(observer: Callable[[TracingRuntime], None]) -> None:
    with _lock:
        if observer in _observers:
            _observers.remove(observer)


def live_runtimes() -> list[TracingRuntime]:
    with _lock:
        return list(_runtimes)


def _register(runtime: TracingRuntime) -> None:
    global _atexit_registered
    with _lock:
        _runtimes.append(runtime)
        if not _atexit_registered:
            atexit.register(_shutdown_at_exit)
            _atexit_registered = True
        observers = list(_observers)
    for observer in observers:
        try:
            observer(runtime)
        except Exception:
            logger.exception("or_middleware: a runtime observer failed")


def _unregister(runtime: TracingRuntime) -> None:
    with _lock:
        if runtime in _runtimes:
            _runtimes.remove(runtime)


def default_runtime() -> TracingRuntime | None:
    """The newest runtime: it traces LLM calls made outside any request (startup, jobs)."""
    with _lock:
        return _runtimes[-1] if _runtimes else None


def force_flush(timeout_millis: int = 30_000) -> bool:
    """Export every finished span now; True when all destinations finished in time."""
    with _lock:
        runtimes = list(_runtimes)
    return all(r.force_flush(timeout_millis) for r in runtimes)


def shutdown_all(deadline: float | None = None) -> None:
    """Stop every runtime, all within one shutdown budget (the largest of theirs) from now."""
    with _lock:
        runtimes = list(_runtimes)
    if deadline is None and runtimes:
        deadline = time.monotonic() + max(r.settings.shutdown_budget_s for r in runtimes)
    for runtime in runtimes:
        try:
            runtime.shutdown(deadline)
        except Exception:
            logger.exception("or_middleware: shutdown failed")


def _shutdown_at_exit() -> None:
    """At exit (WSGI servers, scripts; after an ASGI lifespan shutdown): one budget in all. After a
    lifespan shutdown flushed, the exit gets what is left of that budget, so the two never add up."""
    shutdown_all(_exit_deadline)


def stats() -> dict[str, Any]:
    """Per-destination counts: queued, exported, filtered, failed, dropped, retried, spooled."""
    with _lock:
        runtimes = list(_runtimes)
    merged: dict[str, Any] = {}
    for runtime in runtimes:  # two middlewares in one process may both have an "otlp"
        for name, counts in runtime.stats().items():
            into = merged.setdefault(name, {})
            for key, value in counts.items():
                # a shared spool directory is one backlog, not one per runtime
                into[key] = max(into.get(key, 0), value) if key == "spool_pending" else into.get(key, 0) + value
    return merged
