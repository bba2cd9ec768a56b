"""Privacy transforms of a destination's span drafts: no content, redacted content, no secrets.

- :func:`strip_content` (privacy mode): every content attribute (``spans.CONTENT_ATTRIBUTES``:
  prompts, completions, system text, tool definitions and arguments, error bodies) is removed
  from the span and its events. Tokens, cost, timing, model and metadata stay.
- :class:`ContentRedaction` (``REDACT_PII``): content stays, PII in it becomes placeholders.
- :func:`scrub_secrets_everywhere` (always, every destination): secrets in any string of
  the span, its events, links, status and resource become ``[SECRET]``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event
from opentelemetry.trace import Link, Status

from or_middleware.export.draft import SpanDraft
from or_middleware.export.redaction import PIIRedactor, scrub_secrets
from or_middleware.spans import CONTENT_ATTRIBUTES

ORIGINAL_PARENT = "or_middleware.original_parent_span_id"


def _without_content(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (attributes or {}).items() if k not in CONTENT_ATTRIBUTES}


def strip_content(draft: SpanDraft) -> None:
    for key in [k for k in draft.attributes if k in CONTENT_ATTRIBUTES]:
        del draft.attributes[key]
    if any(key in CONTENT_ATTRIBUTES for event in draft.events for key in (event.attributes or {})):
        draft.events = [Event(e.name, _without_content(e.attributes), e.timestamp) for e in draft.events]


def _map_strings(value: Any, change: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return change(value)
    if isinstance(value, tuple | list) and any(isinstance(item, str) for item in value):
        return [change(item) if isinstance(item, str) else item for item in value]
    return value


def _changed(attributes: Mapping[str, Any] | None, change: Callable[[str], str],
             keys: frozenset[str] | None = None) -> dict[str, Any] | None:
    """The attributes with ``change`` applied to their strings, or None when nothing changed."""
    if not attributes:
        return None
    out: dict[str, Any] = {}
    differs = False
    for key, value in attributes.items():
        new = value if keys is not None and key not in keys else _map_strings(value, change)
        differs = differs or new != value
        out[key] = new
    return out if differs else None


class ContentRedaction:
    """PII placeholders in the content attributes of a span and its events."""

    def __init__(self, redactor: PIIRedactor) -> None:
        self._redactor = redactor

    def __call__(self, draft: SpanDraft) -> None:
        redact = self._redactor.redact_content
        for key, value in list(draft.attributes.items()):
            if key in CONTENT_ATTRIBUTES:
                draft.attributes[key] = _map_strings(value, redact)
        draft.events = [
            Event(e.name, changed, e.timestamp)
            if (changed := _changed(e.attributes, redact, CONTENT_ATTRIBUTES)) is not None else e
            for e in draft.events
        ]


class SecretScrubber:
    """``[SECRET]`` for keys and tokens in every string a span carries (resources are cached)."""

    def __init__(self) -> None:
        self._resources: dict[int, tuple[Resource, Resource]] = {}

    def __call__(self, draft: SpanDraft) -> None:
        changed = _changed(draft.attributes, scrub_secrets)
        if changed is not None:
            draft.attributes = changed
        if draft.events:
            draft.events = [
                Event(e.name, new, e.timestamp) if (new := _changed(e.attributes, scrub_secrets)) is not None else e
                for e in draft.events
            ]
        if draft.links:
            draft.links = [
                Link(link.context, new) if (new := _changed(link.attributes, scrub_secrets)) is not None else link
                for link in draft.links
            ]
        description = draft.status.description
        if description and (clean := scrub_secrets(description)) != description:
            draft.status = Status(draft.status.status_code, clean)
        draft.resource = self._scrubbed(draft.resource)

    def _scrubbed(self, resource: Resource) -> Resource:
        cached = self._resources.get(id(resource))
        if cached is not None and cached[0] is resource:
            return cached[1]
        changed = _changed(resource.attributes, scrub_secrets)
        clean = Resource(changed, resource.schema_url) if changed is not None else resource
        if len(self._resources) > 64:
            self._resources.clear()
        self._resources[id(resource)] = (resource, clean)
        return clean


def detach_from_parent(draft: SpanDraft) -> None:
    """For ``SPANS=genai``: the GenAI span's parent (the server span) is not sent, so the span
    becomes a root of the same trace instead of pointing at a span the destination never sees."""
    if draft.parent is not None:
        draft.attributes[ORIGINAL_PARENT] = f"{draft.parent.span_id:016x}"
        draft.parent = None
