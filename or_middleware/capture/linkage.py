"""Linkage with OpenRouter: the fields merged into an OpenRouter request body so the spans
OpenRouter Broadcast emits nest under ours. Pure: dict in, dict changed in place."""

from __future__ import annotations

from typing import Any

MAX_USER_CHARS = 128  # OpenRouter's limit for `user`
MAX_SESSION_CHARS = 256  # and for `session_id`


def link_openrouter_body(
    body: dict[str, Any],
    *,
    trace_id: str,
    parent_span_id: str,
    generation_name: str,
    trace_name: str | None,
    user: str | None,
    session: str | None,
) -> str:
    """Add what the app did not set; never overwrite. Returns the linkage outcome:
    ``linked`` (we added something), ``kept`` (the app had set it all) or
    ``skipped_trace_not_object`` (the app's ``trace`` is not an object: left alone)."""
    added = False
    trace = body.get("trace")
    if trace is None:
        trace = body["trace"] = {}
    if not isinstance(trace, dict):
        return "skipped_trace_not_object"
    foreign_trace = "trace_id" in trace and str(trace["trace_id"]).lower() != trace_id
    wanted = {
        "trace_id": trace_id,
        # our span id means nothing inside somebody else's trace
        "parent_span_id": None if foreign_trace else parent_span_id,
        "trace_name": trace_name,
        "generation_name": generation_name,
    }
    for key, value in wanted.items():
        if value is not None and key not in trace:
            trace[key] = value
            added = True
    if user and "user" not in body:
        body["user"] = user[:MAX_USER_CHARS]
        added = True
    if session and "session_id" not in body:
        body["session_id"] = session[:MAX_SESSION_CHARS]
        added = True
    return "linked" if added else "kept"
