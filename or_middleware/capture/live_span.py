"""Our spans while they run (an LLM call's GenAI span, a request's server span), when only our
analysis stage will read them.

An OpenTelemetry SDK span costs more to start and end than everything else a call does on the
request path: a lock, bounded attribute and event containers, every span processor's
``on_start``/``on_end``, and every attribute cleaned as it is set. When the runtime's provider
has no span processor but our analysis stage (no test capture, no app provider to forward to),
nobody can see the span before it ends. Then the request path only keeps what the span is (ids
from our provider's id generator and sampler, times, parent, the attributes set on it) in a
:class:`LiveSpan`, and the analysis thread builds the finished span once (for a GenAI span, its
attributes too, from the call's record). A live span is current while the client sends or the
app runs (spans nest under it) and answers what any span answers.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode

# Attributes and events a live span holds at most (the SDK's own limits are applied when it ends:
# 128 attributes unless OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT says otherwise); the oldest go first.
_MAX_OWN = 1024


def sampled_span_context(provider: Any, parent: Context | None, name: str, kind: SpanKind) -> SpanContext:
    """The span context the SDK would give a new span under ``parent``: the provider's id
    generator and sampler, the parent's trace, the W3C "random" flag as the SDK sets it."""
    ids = provider.id_generator
    caller = trace.get_current_span(parent).get_span_context()
    trace_id = caller.trace_id if caller.is_valid else ids.generate_trace_id()
    sampled = provider.sampler.should_sample(parent, trace_id, name, kind)
    flags = trace.TraceFlags.SAMPLED if sampled.decision.is_sampled() else trace.TraceFlags.DEFAULT
    random = getattr(caller.trace_flags, "random_trace_id", False) if caller.is_valid \
        else getattr(ids, "is_trace_id_random", lambda: False)()
    if random:
        flags |= getattr(trace.TraceFlags, "RANDOM_TRACE_ID", 0)
    return SpanContext(trace_id, ids.generate_span_id(), is_remote=False, trace_flags=trace.TraceFlags(flags),
                       trace_state=sampled.trace_state)


class LiveSpan(trace.Span):
    """A recording span whose finished form is built off the request path (see the module doc)."""

    def __init__(self, name: str, context: SpanContext, parent: SpanContext | None, tracer: Any, *,
                 kind: SpanKind = SpanKind.CLIENT, attributes: dict[str, Any] | None = None,
                 start_time: int | None = None) -> None:
        self.name = name
        self.kind = kind
        self._context = context
        self.parent = parent
        self.instrumentation_scope = tracer._instrumentation_scope  # what foreign_genai_span() recognises
        self.resource = tracer.resource
        self.start_time = start_time or time.time_ns()
        self.end_time: int | None = None
        self.own_attributes: dict[str, Any] = attributes if attributes is not None else {}
        self.events: list[Event] = []
        self.status: Status | None = None

    # -- the trace.Span API, for whoever holds the current span while the client sends ----------

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self.end_time is None

    @property
    def attributes(self) -> Mapping[str, Any]:
        return self.own_attributes

    # Called by the app or other instrumentations while the span is current: whatever they pass
    # (or however threads interleave), nothing of ours may raise into them (an odd call is ignored).

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        try:
            for key, value in attributes.items():
                self.set_attribute(key, value)
        except Exception:
            pass

    def set_attribute(self, key: str, value: Any) -> None:
        if self.end_time is not None:
            return
        own = self.own_attributes
        try:
            if key in own:
                del own[key]  # re-set: it moves last, as in the SDK's mapping
            elif len(own) >= _MAX_OWN:
                del own[next(iter(own))]
            own[key] = value
        except Exception:  # another thread changed it meanwhile; an unhashable key
            pass

    def add_event(self, name: str, attributes: Mapping[str, Any] | None = None,
                  timestamp: int | None = None) -> None:
        if self.end_time is None and len(self.events) < _MAX_OWN:
            with contextlib.suppress(Exception):
                self.events.append(Event(name, dict(attributes or {}), timestamp or time.time_ns()))

    def update_name(self, name: str) -> None:
        if self.end_time is None:
            self.name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        # as the SDK: UNSET is ignored, and OK is final
        code = status.status_code if isinstance(status, Status) else status
        if self.end_time is None and code is not StatusCode.UNSET and not (
                self.status is not None and self.status.status_code is StatusCode.OK):
            self.status = status if isinstance(status, Status) else Status(status, description)

    def record_exception(self, exception: BaseException, attributes: Mapping[str, Any] | None = None,
                         timestamp: int | None = None, escaped: bool = False) -> None:
        try:
            module, qualname = type(exception).__module__, type(exception).__qualname__
            self.add_event("exception", {
                "exception.type": f"{module}.{qualname}" if module and module != "builtins" else qualname,
                "exception.message": str(exception),
                "exception.stacktrace": "".join(traceback.format_exception(exception)),
                "exception.escaped": str(escaped),
                **(attributes or {}),
            }, timestamp)
        except Exception:
            pass

    def end(self, end_time: int | None = None) -> None:
        if self.end_time is None:
            self.end_time = end_time or time.time_ns()

    # -- the exporter side ---------------------------------------------------------------------

    def finished(self, attributes: dict[str, Any], limits: SpanLimits, status: Status | None) -> ReadableSpan:
        """The span every processor would have got from the SDK, with ``attributes`` (a call's)
        before the ones set on it."""
        attributes = {**attributes, **self.own_attributes} if attributes else self.own_attributes
        return ReadableSpan(
            name=self.name,
            context=self._context,
            parent=self.parent,
            resource=self.resource,
            attributes=_limited(attributes, limits),
            events=tuple(self.events),
            links=(),
            kind=self.kind,
            status=self.status or status or Status(StatusCode.UNSET),
            start_time=self.start_time,
            end_time=self.end_time,
            instrumentation_scope=self.instrumentation_scope,
        )


_PLAIN = (str, bool, int, float)


def _limited(attributes: dict[str, Any], limits: SpanLimits) -> Mapping[str, Any]:
    """The attributes as the SDK keeps them: values cleaned (sequences as tuples, odd types as
    text), and, past the span limits, the SDK's own bounded mapping (which counts what it drops)."""
    from opentelemetry.attributes import BoundedAttributes, _clean_attribute_value

    most, longest = limits.max_span_attributes, limits.max_span_attribute_length
    if longest is not None or (most is not None and len(attributes) > most):
        return BoundedAttributes(most, attributes, immutable=True, max_value_len=longest)
    clean: dict[str, Any] = {}
    for key, value in attributes.items():
        if type(value) not in _PLAIN:
            value = _clean_attribute_value(value, None)
        clean[key] = value
    return clean
