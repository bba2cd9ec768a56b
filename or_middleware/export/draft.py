"""SpanDraft: a destination's editable copy of a finished span.

The SDK's ReadableSpan is immutable and shared by every destination. Each destination's
transforms (re-parenting, privacy, redaction, dialect, secret scrubbing) edit a draft, and
one new ReadableSpan is built at the end, on that destination's exporter thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Link, SpanContext, Status

from or_middleware.spans import GENAI_SCOPE


def is_genai_span(span: ReadableSpan) -> bool:
    """A span of the span contract (our GenAI CLIENT spans), as opposed to server or app spans."""
    scope = span.instrumentation_scope
    return scope is not None and scope.name == GENAI_SCOPE


class SpanDraft:
    def __init__(self, span: ReadableSpan) -> None:
        self.span = span
        self.attributes: dict[str, Any] = dict(span.attributes or {})
        self.events: list[Event] = list(span.events)
        self.links: list[Link] = list(span.links)
        self.resource: Resource = span.resource
        self.parent: SpanContext | None = span.parent
        self.status: Status = span.status
        self.is_genai = is_genai_span(span)

    def build(self) -> ReadableSpan:
        span = self.span
        return ReadableSpan(
            name=span.name,
            context=span.context,
            parent=self.parent,
            resource=self.resource,
            attributes=self.attributes,
            events=self.events,
            links=self.links,
            kind=span.kind,
            status=self.status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )


DraftTransform = Callable[[SpanDraft], None]
