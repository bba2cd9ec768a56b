"""``CONTENT=event``: prompts and completions as the conventions' content event, an OTLP log
record ``gen_ai.client.inference.operation.details``, instead of span attributes
(https://github.com/open-telemetry/semantic-conventions-genai/blob/main/docs/gen-ai/client-inference.md#event-gen_aiclientinferenceoperationdetails),
for backends that want content out of spans.

:class:`ContentToEvent` is a destination transform placed after privacy and PII redaction: it
takes the content attributes off each GenAI span (so neither the span nor a dialect carries
them) and keeps one event for it, with the span's non-content GenAI attributes and its trace and
span ids. A privacy-mode destination has no content left to take, so it gets no event.
:class:`ContentEventSink` sends the kept events, as OTLP logs with their own retries and spool,
before it hands the spans to the destination's own delivery. Both run on the destination's
exporter thread, one batch after the other, so what is kept is bounded by a batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.exporter.otlp.proto.common._internal import (
    _encode_attributes,
    _encode_instrumentation_scope,
    _encode_resource,
    _encode_span_id,
    _encode_trace_id,
)
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from or_middleware.export.draft import SpanDraft
from or_middleware.export.transports import SendResult
from or_middleware.spans import CONTENT_ATTRIBUTES, GENAI_SCOPE
from or_middleware.version import __version__

EVENT_NAME = "gen_ai.client.inference.operation.details"
SEVERITY_INFO = 9
MAX_PENDING_EVENTS = 4096  # more than a batch: a sink that never drains cannot grow without end
_EVENT_KEYS = ("gen_ai.", "server.", "error.type")  # the event's attributes besides content


@dataclass
class ContentEvent:
    trace_id: int
    span_id: int
    trace_flags: int
    time_unix_nano: int
    resource: Resource
    attributes: dict[str, Any]


class ContentToEvent:
    def __init__(self) -> None:
        self.pending: list[ContentEvent] = []

    def __call__(self, draft: SpanDraft) -> None:
        if not draft.is_genai:
            return
        content = {k: draft.attributes.pop(k) for k in list(draft.attributes) if k in CONTENT_ATTRIBUTES}
        if not content or len(self.pending) >= MAX_PENDING_EVENTS:
            return
        facts = {k: v for k, v in draft.attributes.items() if k.startswith(_EVENT_KEYS)}
        context = draft.span.context
        self.pending.append(ContentEvent(context.trace_id, context.span_id, int(context.trace_flags),
                                         draft.span.end_time or 0, draft.resource, {**facts, **content}))

    def drain(self) -> list[ContentEvent]:
        events, self.pending = self.pending, []
        return events


class ContentEventLogs:
    """The OTLP/HTTP protobuf body of a list of content events (an ExportLogsServiceRequest)."""

    content_type = "application/x-protobuf"
    _scope = InstrumentationScope(GENAI_SCOPE, __version__)

    def encode(self, events: Sequence[Any]) -> bytes:
        by_resource: dict[int, tuple[Resource, list[LogRecord]]] = {}
        for event in events:
            records = by_resource.setdefault(id(event.resource), (event.resource, []))[1]
            records.append(LogRecord(
                time_unix_nano=event.time_unix_nano, observed_time_unix_nano=event.time_unix_nano,
                severity_number=SEVERITY_INFO, severity_text="INFO", event_name=EVENT_NAME,
                attributes=_encode_attributes(event.attributes), flags=event.trace_flags,
                trace_id=_encode_trace_id(event.trace_id), span_id=_encode_span_id(event.span_id),
            ))
        request = ExportLogsServiceRequest(resource_logs=[
            ResourceLogs(resource=_encode_resource(resource),
                         scope_logs=[ScopeLogs(scope=_encode_instrumentation_scope(self._scope), log_records=records)])
            for resource, records in by_resource.values()
        ])
        return request.SerializeToString()


def logs_url(traces_url: str) -> str:
    """The logs endpoint beside a traces endpoint (``.../v1/traces`` -> ``.../v1/logs``)."""
    base = traces_url.rstrip("/")
    return base.removesuffix("/v1/traces") + "/v1/logs"


class ContentEventSink:
    """The destination's span sink, with the content events of each batch sent first as logs."""

    def __init__(self, spans: Any, logs: Any, events: ContentToEvent) -> None:
        self._spans, self._logs, self._events = spans, logs, events

    def deliver(self, spans: Sequence[ReadableSpan]) -> None:
        events = self._events.drain()
        if events:
            self._logs.deliver(events)
        self._spans.deliver(spans)

    def due_in(self) -> float | None:
        due = [d for d in (self._spans.due_in(), self._logs.due_in()) if d is not None]
        return min(due) if due else None

    def tick(self) -> None:
        self._logs.tick()
        self._spans.tick()

    def probe(self, spans: Sequence[ReadableSpan]) -> SendResult:
        return self._spans.probe(spans)

    def pending_spans(self) -> int:
        return int(self._spans.pending_spans())

    def after_fork(self) -> None:
        self._logs.after_fork()
        self._spans.after_fork()

    def close(self) -> None:
        self._logs.close()
        self._spans.close()
