"""Privacy transforms of a destination's span drafts: no content, redacted content, no credentials.

- :class:`PrivacyAllowlist` (privacy mode): the span keeps only the attributes
  :mod:`or_middleware.export.allowlist` knows to hold no content, for its kind (GenAI, server,
  other); exception events shrink to the exception type, the status description to that type;
  other events and link attributes are dropped. Unknown means dropped: privacy fails closed.
- :class:`ContentRedaction` (``REDACT_PII``): content stays, PII in it becomes placeholders.
- :class:`CredentialScrubber` (always, every destination): credential headers captured on the
  server span are dropped, URLs lose user info and sensitive query values, and secrets in any
  string that can hold one (span, events, links, status, resource) become ``[SECRET]``.

Each transform touches the draft only when it changes something, so a span nobody changed is
exported as the very object the SDK made (no rebuild).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event
from opentelemetry.trace import Link, Status, StatusCode

from or_middleware.export import allowlist
from or_middleware.export.draft import SpanDraft
from or_middleware.export.redaction import PIIRedactor
from or_middleware.secrets import safe_query, safe_url, scrub_secrets
from or_middleware.spans import CONTENT_ATTRIBUTES

ORIGINAL_PARENT = "or_middleware.original_parent_span_id"
_MAX_TYPE_CHARS = 200  # an exception type is a qualified class name


# -- privacy mode: the allowlist ---------------------------------------------------------------


def _exception_type(events: Sequence[Event]) -> str | None:
    for event in reversed(events):
        if event.name == allowlist.EXCEPTION_EVENT:
            value = (event.attributes or {}).get(allowlist.EXCEPTION_TYPE)
            if isinstance(value, str) and value:
                return value[:_MAX_TYPE_CHARS]
    return None


_MAX_PLANS = 512  # distinct attribute key sets remembered per transform (then forgotten and relearnt)


class PrivacyAllowlist:
    """A privacy-mode destination's span: known non-content attributes only (see module doc).

    Which keys a span keeps depends only on its kind and its keys, and spans come in few key sets:
    the decision is made once per key set (a tuple lookup), not once per attribute per span."""

    def __init__(self) -> None:
        self._kept: dict[tuple[bool, tuple[str, ...]], tuple[str, ...] | None] = {}

    def _plan(self, is_genai: bool, keys: tuple[str, ...]) -> tuple[str, ...] | None:
        """The keys to keep, or None when every key is allowed."""
        allowed = allowlist.genai_attribute_allowed if is_genai else allowlist.http_attribute_allowed
        kept = tuple(key for key in keys if allowed(key))
        plan = None if len(kept) == len(keys) else kept
        if len(self._kept) >= _MAX_PLANS:
            self._kept.clear()
        self._kept[(is_genai, keys)] = plan
        return plan

    def __call__(self, draft: SpanDraft) -> None:
        current = draft.current
        keys = tuple(current)
        try:
            kept = self._kept[(draft.is_genai, keys)]
        except KeyError:
            kept = self._plan(draft.is_genai, keys)
        if kept is not None:
            draft.attributes = {key: current[key] for key in kept}
        if draft.events:
            self._events(draft)
        if draft.links and any(link.attributes for link in draft.links):
            draft.links = [Link(link.context) for link in draft.links]
        self._status(draft)

    @staticmethod
    def _events(draft: SpanDraft) -> None:
        kept: list[Event] = []
        for event in draft.events:
            if not allowlist.event_allowed(event.name):
                continue
            attributes = event.attributes or {}
            if all(allowlist.event_attribute_allowed(event.name, key) for key in attributes):
                kept.append(event)
            else:
                clean = {k: v for k, v in attributes.items() if allowlist.event_attribute_allowed(event.name, k)}
                kept.append(Event(event.name, clean, event.timestamp))
        if len(kept) != len(draft.events) or any(a is not b for a, b in zip(kept, draft.events, strict=True)):
            draft.events = kept

    @staticmethod
    def _status(draft: SpanDraft) -> None:
        """An error's description is the app's exception text (``BadRequestError: ... <the
        prompt>``): it becomes the exception type, else the span's ``error.type``, else nothing."""
        status = draft.status
        if not status.description:
            return
        error_type = draft.current.get("error.type")
        if status.description == error_type:
            return
        reduced = _exception_type(draft.events) or (str(error_type)[:_MAX_TYPE_CHARS] if error_type else None)
        draft.status = Status(status.status_code, reduced) if status.status_code is StatusCode.ERROR \
            else Status(status.status_code)


# -- REDACT_PII ----------------------------------------------------------------------------------


def _map_strings(value: Any, change: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return change(value)
    if isinstance(value, tuple | list) and any(isinstance(item, str) for item in value):
        return [change(item) if isinstance(item, str) else item for item in value]
    return value


def _changed(attributes: Mapping[str, Any] | None, change: Callable[[str, Any], Any]) -> dict[str, Any] | None:
    """The attributes with ``change(key, value)`` applied, or None when nothing changed."""
    if not attributes:
        return None
    out: dict[str, Any] | None = None
    for index, (key, value) in enumerate(attributes.items()):
        new = change(key, value)
        if out is None and new is not value and new != value:
            out = dict(list(attributes.items())[:index])
        if out is not None:
            out[key] = new
    return out


class ContentRedaction:
    """PII placeholders in the content attributes of a span and its events."""

    def __init__(self, redactor: PIIRedactor) -> None:
        self._redact = redactor.redact_content

    def _change(self, key: str, value: Any) -> Any:
        return _map_strings(value, self._redact) if key in CONTENT_ATTRIBUTES else value

    def __call__(self, draft: SpanDraft) -> None:
        changed = _changed(draft.current, self._change)
        if changed is not None:
            draft.attributes = changed
        if draft.events:
            events = [Event(e.name, new, e.timestamp) if (new := _changed(e.attributes, self._change)) is not None
                      else e for e in draft.events]
            if any(a is not b for a, b in zip(events, draft.events, strict=True)):
                draft.events = events


# -- always: credentials -------------------------------------------------------------------------

# URL-valued attributes (inbound server spans, outbound client spans, other instrumentations).
_URL_KEYS = frozenset({"http.url", "url.full", "http.target"})
_QUERY_KEYS = frozenset({"url.query"})
# String attributes whose values are enumerations, hashes, ids or numbers as text: they cannot
# hold a credential, so the scrubber does not read them (the per-span cost is in the strings).
_NO_SECRETS = frozenset({
    "gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.system", "gen_ai.output.type",
    "gen_ai.response.finish_reasons", "or_middleware.response.native_finish_reasons",
    "or_middleware.cost.source", "or_middleware.stream.outcome", "or_middleware.linkage",
    "or_middleware.prompt.sha256", ORIGINAL_PARENT, "http.method", "http.request.method", "http.scheme",
    "url.scheme", "http.flavor", "network.protocol.version", "net.peer.ip", "client.address",
    "network.peer.address", "user_agent.synthetic.type",
})


def _scrub_value(key: str, value: Any) -> Any:
    if key.startswith(allowlist.CAPTURED_HEADER_PREFIXES):  # referer, origin, location: URLs with tokens
        return _map_strings(value, lambda text: scrub_secrets(safe_url(text)))
    if isinstance(value, str):
        if key in _NO_SECRETS:
            return value
        if key in _URL_KEYS:
            value = safe_url(value)
        elif key in _QUERY_KEYS:
            value = safe_query(value)
        return scrub_secrets(value)
    if isinstance(value, tuple | list) and value and isinstance(value[0], str) and key not in _NO_SECRETS:
        return _map_strings(value, scrub_secrets)
    return value


class _ScrubPlan:
    """What the scrubber does to spans with one key set: the credential headers to drop, the keys
    whose values can hold a secret (every other key is one of ``_NO_SECRETS``: not read at all)."""

    __slots__ = ("drop", "read")

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.drop = frozenset(key for key in keys if allowlist.is_credential_header(key))
        self.read = tuple(key for key in keys if key not in self.drop and (
            key not in _NO_SECRETS or key.startswith(allowlist.CAPTURED_HEADER_PREFIXES)))


class CredentialScrubber:
    """No credential leaves, whatever the destination's settings (see module doc)."""

    def __init__(self) -> None:
        self._resources: dict[int, tuple[Resource, Resource]] = {}
        self._plans: dict[tuple[str, ...], _ScrubPlan] = {}
        self._names: dict[str, str] = {}  # span names repeat (routes, models): scrubbed once each

    def _plan(self, keys: tuple[str, ...]) -> _ScrubPlan:
        plan = self._plans.get(keys)
        if plan is None:
            if len(self._plans) >= _MAX_PLANS:
                self._plans.clear()
            plan = self._plans[keys] = _ScrubPlan(keys)
        return plan

    def _attributes(self, draft: SpanDraft) -> None:
        current = draft.current
        if not current:
            return
        plan = self._plan(tuple(current))
        changes: dict[str, Any] | None = None
        for key in plan.read:
            value = current[key]
            if isinstance(value, int | float):  # bool too: numbers hold no secret
                continue
            new = _scrub_value(key, value)
            if new is not value and new != value:
                if changes is None:
                    changes = {}
                changes[key] = new
        if changes is not None or plan.drop:
            draft.attributes = {key: changes.get(key, value) if changes else value
                                for key, value in current.items() if key not in plan.drop}

    def _name(self, name: str) -> str:
        clean = self._names.get(name)
        if clean is None:
            clean = scrub_secrets(name)
            if len(self._names) >= _MAX_PLANS:
                self._names.clear()
            if len(name) <= 256:  # a long name (a path with a token) is not worth keeping
                self._names[name] = clean
        return clean

    def __call__(self, draft: SpanDraft) -> None:
        self._attributes(draft)
        if draft.events:
            events = [Event(e.name, new, e.timestamp) if (new := _changed(e.attributes, _scrub_value)) is not None
                      else e for e in draft.events]
            if any(a is not b for a, b in zip(events, draft.events, strict=True)):
                draft.events = events
        if draft.links and any(link.attributes for link in draft.links):
            links = [Link(link.context, new) if (new := _changed(link.attributes, _scrub_value)) is not None
                     else link for link in draft.links]
            if any(a is not b for a, b in zip(links, draft.links, strict=True)):
                draft.links = links
        if (name := self._name(draft.name)) != draft.name:  # a server span named by its path: /reset/<jwt>
            draft.name = name
        description = draft.status.description
        if description and (clean := scrub_secrets(description)) != description:
            draft.status = Status(draft.status.status_code, clean)
        draft.resource = self._scrubbed(draft.resource)

    def _scrubbed(self, resource: Resource) -> Resource:
        cached = self._resources.get(id(resource))
        if cached is not None and cached[0] is resource:
            return cached[1]
        changed = _changed(resource.attributes, _scrub_value)
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
