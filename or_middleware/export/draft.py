"""SpanDraft: a destination's editable copy of a finished span.

The SDK's ReadableSpan is immutable and shared by every destination. Each destination's
transforms (re-parenting, privacy, redaction, dialect, credential scrubbing) edit a draft, and
one new ReadableSpan is built at the end, on that destination's exporter thread, only when a
transform changed something (most server spans of a privacy-off destination leave as they came).

Reading is free: :attr:`SpanDraft.current` is the span's own attribute mapping until a
transform asks for :attr:`SpanDraft.attributes` (a copy, made once, to edit). Events, links,
status, resource and parent are replaced, never edited in place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Link, SpanContext, Status

from or_middleware.spans import GENAI_SCOPE

_EMPTY: Mapping[str, Any] = {}


def is_genai_span(span: ReadableSpan) -> bool:
    """A span of the span contract (our GenAI CLIENT spans), as opposed to server or app spans."""
    scope = span.instrumentation_scope
    return scope is not None and scope.name == GENAI_SCOPE


class SpanDraft:
    def __init__(self, span: ReadableSpan) -> None:
        self.span = span
        self.name: str = span.name
        self._attributes: dict[str, Any] | None = None
        self.events: Sequence[Event] = span.events
        self.links: Sequence[Link] = span.links
        self.resource: Resource = span.resource
        self.parent: SpanContext | None = span.parent
        self.status: Status = span.status
        self.is_genai = is_genai_span(span)

    @property
    def current(self) -> Mapping[str, Any]:
        """The attributes as they are now, for reading (no copy)."""
        if self._attributes is not None:
            return self._attributes
        return self.span.attributes or _EMPTY

    @property
    def attributes(self) -> dict[str, Any]:
        """The attributes to edit (copied from the span on first use)."""
        if self._attributes is None:
            self._attributes = dict(self.span.attributes or _EMPTY)
        return self._attributes

    @attributes.setter
    def attributes(self, value: dict[str, Any]) -> None:
        self._attributes = value

    @property
    def changed(self) -> bool:
        span = self.span
        return not (self._attributes is None and self.name is span.name and self.events is span.events
                    and self.links is span.links and self.resource is span.resource and self.parent is span.parent
                    and self.status is span.status)

    def build(self) -> ReadableSpan:
        if not self.changed:
            return self.span
        span = self.span
        return ReadableSpan(
            name=self.name,
            context=span.context,
            parent=self.parent,
            resource=self.resource,
            attributes=self.current,
            events=self.events,
            links=self.links,
            kind=span.kind,
            status=self.status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )


DraftTransform = Callable[[SpanDraft], None]
