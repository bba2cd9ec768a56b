"""The request's server span, made by us: at once when a destination exports every span, lazily otherwise.

Most requests of most apps make no LLM call. When every destination keeps only GenAI spans
(``SPANS=genai``) or only the traces that made an LLM call (``SPANS=traces``), a request that
makes no LLM call needs no server span at all: :class:`RequestSpan` only notes the request's
start time, and the first LLM call of the request creates the server span (its parent) with that
start time and the caller's ``traceparent``. When a destination exports every span
(``SPANS=all``), the span is started at once, as the OpenTelemetry ASGI/WSGI instrumentations do.

A pending span that nobody could see when the first LLM call arrives (only ``SPANS=genai``
destinations, no app provider to forward to, no test capture) is not recorded at all: the call's
parent is a non-recording span with a fresh span id in the caller's trace, decided by the same
sampler, which is all a GenAI span needs of it (its trace, its parent id, its sampling).

Either way the span is ours rather than the generic instrumentation's middleware: the same
attributes (names chosen by ``OTEL_SEMCONV_STABILITY_OPT_IN`` through the instrumentation's own
functions, headers captured as ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_*`` say, credentials
redacted by :mod:`or_middleware.inbound`) without its per-request metrics, per-message send/receive
machinery and response propagation, which cost more than the span itself (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.instrumentation._semconv import (
    _OpenTelemetrySemanticConventionStability,
    _OpenTelemetryStabilitySignalType,
    _set_status,
    _StabilityMode,
)
from opentelemetry.instrumentation.utils import http_status_to_status_code
from opentelemetry.semconv._incubating.attributes.http_attributes import HTTP_STATUS_CODE
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.http import (
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST,
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE,
    SanitizeValue,
    get_custom_headers,
)

from or_middleware.capture.live_span import LiveSpan, sampled_span_context
from or_middleware.version import __version__

SERVER_SCOPE = "or_middleware.server"

# The current request's pending or started server span (None outside a request we serve).
_CURRENT: ContextVar[RequestSpan | None] = ContextVar("or_middleware_request_span", default=None)
_MATERIALISING = threading.Lock()  # two threads of one request asking at once (rare): one span

Describe = Callable[[Any, Any], tuple[str, dict[str, Any]]]  # (carrier, mode) -> (name, attributes)


class ServerSpans:
    """How one middleware makes server spans: its tracer, the attribute names in force, which
    headers to capture, and whether spans start at once (``eager``) or on the first LLM call."""

    def __init__(
        self,
        tracer_provider: Any,
        *,
        eager: bool,
        describe: Describe,
        getter: Any,
        request_headers: Callable[[Any, SanitizeValue, list[str]], dict[str, Any]],
        response_headers: Callable[[Any, SanitizeValue, list[str]], dict[str, Any]],
        seen: Callable[[], bool] | None = None,
        runtime: Any = None,
    ) -> None:
        # Imported here: capture.call (which or_middleware.inbound uses) imports this module.
        from or_middleware.inbound import redact_attributes, sanitize_fields

        self._redact_attributes = redact_attributes  # no credential in URL attributes or captured headers
        self._provider = tracer_provider
        self.tracer = tracer_provider.get_tracer(SERVER_SCOPE, __version__)
        self.eager = eager
        # Would a span started now reach anyone? None: always (eager spans are exported).
        self._seen = None if eager else seen
        # Our runtime: when its analysis stage is the only reader, the span is a live one
        # (capture/live_span.py), handed to the analysis when it ends.
        self._runtime = runtime
        _OpenTelemetrySemanticConventionStability._initialize()
        self.mode = _OpenTelemetrySemanticConventionStability._get_opentelemetry_stability_opt_in_mode(
            _OpenTelemetryStabilitySignalType.HTTP
        )
        self._describe = describe
        self._getter = getter
        self._sanitize = SanitizeValue(sanitize_fields())
        self._capture_request = get_custom_headers(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST)
        self._capture_response = get_custom_headers(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE)
        self._request_headers = request_headers
        self._response_headers = response_headers

    def start_span(
        self, carrier: Any, start_ns: int, parent: otel_context.Context | None = None
    ) -> tuple[trace.Span | None, otel_context.Context]:
        """The request's server span and the context holding it. ``parent``: the caller's context
        if already extracted. The span is None when nobody would see it (see the module doc)."""
        if parent is None:
            parent = propagate.extract(carrier, getter=self._getter)
        if self._seen is not None and not self._seen():
            return None, trace.set_span_in_context(self._unrecorded(parent), parent)
        name, attributes = self._describe(carrier, self.mode)
        if self._capture_request:
            attributes.update(self._request_headers(carrier, self._sanitize, self._capture_request))
        self._redact_attributes(attributes)  # before the span holds them: one dict, no set_attribute
        runtime = self._runtime
        if runtime is not None and runtime.records_directly():
            span = _live_server_span(self.tracer, self._provider, name, parent, attributes, start_ns)
        else:
            span = self.tracer.start_span(name, parent, kind=SpanKind.SERVER, attributes=attributes,
                                          start_time=start_ns)
        return span, trace.set_span_in_context(span, parent)

    def end(self, span: trace.Span, end_ns: int | None) -> None:
        if isinstance(span, LiveSpan):
            span.end(end_ns)
            self._runtime.analysis.end_live(span, None, None)
        else:
            span.end(end_time=end_ns)

    def _unrecorded(self, parent: otel_context.Context) -> trace.Span:
        """A non-recording server span: the ids and sampling decision the SDK would have given the
        request's span (our provider's id generator and sampler, its trace flags), nothing else."""
        return trace.NonRecordingSpan(sampled_span_context(self._provider, parent, "", SpanKind.SERVER))

    def caller_context(self, carrier: Any) -> otel_context.Context | None:
        """The context holding the caller's span (its ``traceparent``), or None without one."""
        try:
            context = propagate.extract(carrier, getter=self._getter)
        except Exception:
            _log_once("traceparent")
            return None
        return context if trace.get_current_span(context).get_span_context().is_valid else None

    def response_attributes(self, span: trace.Span, message: Any) -> None:
        if self._capture_response:
            attributes = self._response_headers(message, self._sanitize, self._capture_response)
            self._redact_attributes(attributes)
            span.set_attributes(attributes)

    def status(self, span: trace.Span, status: int) -> None:
        """The response status on the span, as the instrumentation's ``_set_status`` sets it (its
        default attribute names done here directly: it costs more than the rest of the end)."""
        if self.mode is _StabilityMode.DEFAULT and isinstance(status, int) and status >= 0:
            span.set_attribute(HTTP_STATUS_CODE, status)
            if http_status_to_status_code(status, server_span=True) is StatusCode.ERROR:
                span.set_status(Status(StatusCode.ERROR))
        else:
            _set_status(span, {}, status, str(status), True, self.mode)


class RequestSpan:
    """One request's server span: started at once, on the first LLM call, or never."""

    __slots__ = ("_caller", "_context", "_end_ns", "_error", "_response", "_spans", "carrier", "span", "start_ns",
                 "status")

    def __init__(self, spans: ServerSpans, carrier: Any) -> None:
        self._spans = spans
        self.carrier = carrier
        self.start_ns = time.time_ns()
        self.span: trace.Span | None = None
        self._context: otel_context.Context | None = None
        self._caller: otel_context.Context | None = None  # the caller's context, once extracted
        self.status: int | None = None
        self._response: Any = None
        self._error: BaseException | None = None
        self._end_ns: int | None = None

    def begin(self) -> object | None:
        """Make this the current request; eager spans start and become the current span.
        Returns what :meth:`finish` needs to undo it."""
        token = _CURRENT.set(self)
        attached = None
        if self._spans.eager:
            context = self.context()
            if context is not None:
                attached = otel_context.attach(context)
        else:
            # Pending: the caller's span is current meanwhile, so a span the app starts itself
            # (its own tracing) continues the caller's trace, as the GenAI spans under it must.
            caller = self._caller = self._spans.caller_context(self.carrier)
            if caller is not None:
                attached = otel_context.attach(caller)
        return (token, attached)

    def context(self) -> otel_context.Context | None:
        """The context holding the server span, started now if it was pending (None: ours failed)."""
        if self._context is None:
            with _MATERIALISING:
                if self._context is None:
                    try:
                        # Pending: the caller's context was extracted when the request began
                        # (None there means no caller span: an empty context, extracted again).
                        span, context = self._spans.start_span(self.carrier, self.start_ns, self._caller)
                        self.span = span
                        if span is not None and self._end_ns is not None:  # a call after the response
                            self._close(span)
                        self._context = context
                    except Exception:
                        _log_once("server span")
                        return None
        return self._context

    def response_started(self, status: int, message: Any) -> None:
        self.status = status
        self._response = message

    def failed(self, exc: BaseException) -> None:
        self._error = exc

    def response_done(self) -> None:
        """The last byte of the response is sent: the span ends now, as the OpenTelemetry ASGI
        instrumentation's does (a background task after it is a continuation, not part of it)."""
        if self._end_ns is None:
            self._end_ns = time.time_ns()
            if self.span is not None:
                try:
                    self._close(self.span)
                except Exception:
                    _log_once("server span end")

    def finish(self, undo: object | None) -> None:
        """The request is over: end the span if it is still open; restore the context."""
        try:
            self.response_done()
        finally:
            if isinstance(undo, tuple):
                token, attached = undo
                # A WSGI body may be closed from another context (rare servers): nothing to undo there.
                with contextlib.suppress(ValueError):
                    if attached is not None:
                        otel_context.detach(attached)
                    _CURRENT.reset(token)

    def _close(self, span: trace.Span) -> None:
        if self.status is not None:
            self._spans.status(span, self.status)
            if self._response is not None:
                self._spans.response_attributes(span, self._response)
        if self._error is not None:
            exc = self._error
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        self._spans.end(span, self._end_ns)


def _live_server_span(tracer: Any, provider: Any, name: str, parent: otel_context.Context,
                      attributes: dict[str, Any], start_ns: int) -> trace.Span:
    context = sampled_span_context(provider, parent, name, SpanKind.SERVER)
    if not context.trace_flags.sampled:
        return trace.NonRecordingSpan(context)
    caller = trace.get_current_span(parent).get_span_context()
    return LiveSpan(name, context, caller if caller.is_valid else None, tracer, kind=SpanKind.SERVER,
                    attributes=attributes, start_time=start_ns)


def llm_parent_context() -> otel_context.Context | None:
    """For an LLM call about to start its span: the context to start it in, or None for the
    current one. A call under a live span (our eager server span, or one of the app's own) stays
    under it (the request's server span is started all the same); otherwise the request's pending
    server span is started now and becomes the parent."""
    request = _CURRENT.get()
    if request is None:
        return None
    if trace.get_current_span().is_recording():
        request.context()  # the request made an LLM call: it has its server span, though not as this parent
        return None
    return request.context()


def _log_once(where: str) -> None:
    from or_middleware.capture.call import log_once

    log_once(where)


def wants_every_server_span(settings: Any) -> bool:
    """True when some destination exports every server span (``SPANS=all``): spans start at once."""
    return any(dest.span_scope == "all" for dest in settings.destination_settings())
