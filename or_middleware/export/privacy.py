"""PrivacyFilter: the copy of a span a privacy-mode destination may receive (no content)."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.trace import Event, ReadableSpan

from or_middleware.spans import CONTENT_ATTRIBUTES


def _has_content(attributes: object) -> bool:
    return bool(attributes) and any(key in CONTENT_ATTRIBUTES for key in attributes)  # type: ignore[union-attr]


def without_content(span: ReadableSpan) -> ReadableSpan:
    """The same span minus every content attribute, on the span and on its events."""
    events = span.events
    if not _has_content(span.attributes) and not any(_has_content(e.attributes) for e in events):
        return span
    attributes = {k: v for k, v in (span.attributes or {}).items() if k not in CONTENT_ATTRIBUTES}
    clean_events = [
        Event(
            e.name,
            {k: v for k, v in (e.attributes or {}).items() if k not in CONTENT_ATTRIBUTES},
            e.timestamp,
        )
        for e in events
    ]
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=clean_events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def strip_content(spans: Sequence[ReadableSpan]) -> list[ReadableSpan]:
    return [without_content(span) for span in spans]
