"""Linkage with OpenRouter: the fields added to an OpenRouter request body so the spans
OpenRouter Broadcast emits nest under ours.

The app's bytes are never re-serialised: the fields we add are spliced into the original
body (after the opening ``{`` of the body, or of the app's own ``trace`` object), so
everything else (duplicate keys, ``1e2``, long floats, key order, spacing, a BOM) reaches
the upstream exactly as the app wrote it. A body we cannot splice safely (not UTF-8, a
duplicated ``trace`` key) is sent untouched and the span says why (``or_middleware.linkage``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

MAX_USER_CHARS = 128  # OpenRouter's limit for `user`
MAX_SESSION_CHARS = 256  # and for `session_id`

_WHITESPACE = " \t\n\r"
_DECODER = json.JSONDecoder()


@dataclass
class LinkagePlan:
    """What linkage adds to one body: top-level keys and keys of the app's ``trace`` object."""

    outcome: str  # linked | kept | skipped_trace_not_object
    top: dict[str, Any] = field(default_factory=dict)
    trace: dict[str, Any] = field(default_factory=dict)  # into an existing trace object


def plan_linkage(
    body: dict[str, Any],
    *,
    trace_id: str,
    parent_span_id: str,
    generation_name: str,
    trace_name: str | None,
    user: str | None,
    session: str | None,
) -> LinkagePlan:
    """Add what the app did not set; never overwrite. A ``trace`` that is not an object
    (``null`` included: the app wrote it) is left alone, and then nothing is added."""
    if "trace" in body and not isinstance(body["trace"], dict):
        return LinkagePlan("skipped_trace_not_object")
    existing = body.get("trace")
    trace = existing if isinstance(existing, dict) else {}
    foreign_trace = "trace_id" in trace and str(trace["trace_id"]).lower() != trace_id
    wanted = {
        "trace_id": trace_id,
        # our span id means nothing inside somebody else's trace
        "parent_span_id": None if foreign_trace else parent_span_id,
        "trace_name": trace_name,
        "generation_name": generation_name,
    }
    plan = LinkagePlan("kept")
    added = {key: value for key, value in wanted.items() if value is not None and key not in trace}
    if existing is None:
        if added:
            plan.top["trace"] = added
    else:
        plan.trace = added
    if user and "user" not in body:
        plan.top["user"] = user[:MAX_USER_CHARS]
    if session and "session_id" not in body:
        plan.top["session_id"] = session[:MAX_SESSION_CHARS]
    if plan.top or plan.trace:
        plan.outcome = "linked"
    return plan


def link_openrouter_body(body: dict[str, Any], **ids: Any) -> str:
    """The plan applied to a dict in place (for callers that hold a dict, not bytes)."""
    plan = plan_linkage(body, **ids)
    if plan.trace:
        body["trace"].update(plan.trace)
    body.update(plan.top)
    return plan.outcome


def _members(added: dict[str, Any]) -> bytes:
    # ASCII escapes: the inserted bytes are valid whatever the body holds
    return ",".join(f"{json.dumps(k)}:{json.dumps(v, separators=(',', ':'))}" for k, v in added.items()).encode()


def _skip_whitespace(text: str, at: int) -> int:
    while at < len(text) and text[at] in _WHITESPACE:
        at += 1
    return at


@dataclass(frozen=True)
class BodyLayout:
    """Where linkage may insert into a UTF-8 JSON object body (indexes into ``text``)."""

    text: str
    bom: int  # bytes of a UTF-8 byte order mark before the text
    opening: int  # the body's "{"
    traces: tuple[int | None, ...]  # per top-level "trace" member: its object's "{" (None: not an object)


# Top-level members read one by one; beyond this many the body is read by json.loads and linkage
# skips it (each member costs a Python step: a body of 200,000 keys would take seconds).
MAX_MEMBERS = 256
WIDE = BodyLayout("", 0, 0, ())  # "more members than MAX_MEMBERS": no splice positions


def parse_body(raw: bytes) -> tuple[Any, BodyLayout | None]:
    """``json.loads(raw)`` (same values, same errors), and, for a UTF-8 object, where its members
    are. One pass: each top-level value is read by json's C scanner, as json.loads reads it."""
    encoding = json.detect_encoding(raw)
    text = raw.decode(encoding, "surrogatepass")  # as json.loads decodes bytes
    at = _skip_whitespace(text, 0)
    if not text.startswith("{", at):
        value, end = _DECODER.raw_decode(text, at)
        if _skip_whitespace(text, end) != len(text):
            raise json.JSONDecodeError("Extra data", text, end)
        return value, None
    opening, body, traces = at, {}, []
    at = _skip_whitespace(text, at + 1)
    if not text.startswith("}", at):
        while True:
            if len(body) >= MAX_MEMBERS:  # not an LLM request's shape: json.loads reads it faster
                return json.loads(raw), WIDE
            if not text.startswith('"', at):
                raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, at)
            key, at = _DECODER.raw_decode(text, at)
            at = _skip_whitespace(text, at)
            if not text.startswith(":", at):
                raise json.JSONDecodeError("Expecting ':' delimiter", text, at)
            at = _skip_whitespace(text, at + 1)
            if key == "trace":
                traces.append(at if text.startswith("{", at) else None)
            body[key], at = _DECODER.raw_decode(text, at)
            at = _skip_whitespace(text, at)
            if text.startswith("}", at):
                break
            if not text.startswith(",", at):
                raise json.JSONDecodeError("Expecting ',' delimiter", text, at)
            at = _skip_whitespace(text, at + 1)
    if _skip_whitespace(text, at + 1) != len(text):
        raise json.JSONDecodeError("Extra data", text, at + 1)
    if encoding not in ("utf-8", "utf-8-sig"):
        return body, None
    return body, BodyLayout(text, 3 if encoding == "utf-8-sig" else 0, opening, tuple(traces))


def _insertion(text: str, brace: int, bom: int, added: dict[str, Any]) -> tuple[int, bytes]:
    """Members inserted right after the ``{`` at ``brace``: (byte offset, bytes)."""
    empty = text.startswith("}", _skip_whitespace(text, brace + 1))
    offset = bom + (brace if text.isascii() else len(text[:brace].encode("utf-8", "surrogatepass"))) + 1
    return offset, _members(added) + (b"" if empty else b",")


def splice_linkage(raw: bytes, layout: BodyLayout | None, plan: LinkagePlan) -> tuple[str, bytes | None]:
    """The app's body with the plan's fields inserted, or why it is sent untouched."""
    if plan.outcome != "linked":
        return plan.outcome, None
    if layout is WIDE:
        return "skipped_too_many_keys", None
    if layout is None:
        return "skipped_not_utf8", None
    inserts = []
    if plan.top:
        inserts.append(_insertion(layout.text, layout.opening, layout.bom, plan.top))
    if plan.trace:
        if len(layout.traces) != 1 or layout.traces[0] is None:  # a duplicated "trace": which one
            return "skipped_duplicate_keys", None  # counts is the upstream parser's choice, not ours
        inserts.append(_insertion(layout.text, layout.traces[0], layout.bom, plan.trace))
    pieces, start = [], 0
    for offset, data in sorted(inserts):
        pieces += [raw[start:offset], data]
        start = offset
    pieces.append(raw[start:])
    return "linked", b"".join(pieces)
