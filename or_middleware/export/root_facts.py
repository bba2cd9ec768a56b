"""What a trace's LLM calls tell the request's server span, which ends after them.

Dialects that fill the trace's root span (OpenInference, Langfuse, LangSmith) remember, per
trace, the user, the session, the request's input (the last user message of its first LLM call)
and output (the answer of its last) and whether the last call failed, then hand them to the
server span when it arrives. Bounded: at most ``MAX_REMEMBERED_TRACES`` traces and
``MAX_REMEMBERED_BYTES`` of content, oldest forgotten first (a server span that never comes, e.g.
``SPANS=genai`` or a sampled-out request, cannot grow it). Content is only what the destination
may get: the dialects run after privacy.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from opentelemetry.semconv.attributes import error_attributes

from or_middleware import spans as contract
from or_middleware.export.draft import SpanDraft
from or_middleware.export.messages import ChatMessage

MAX_REMEMBERED_TRACES = 2048
MAX_REMEMBERED_BYTES = 8 * 1024 * 1024  # content held for server spans still to come


def _last_user_text(messages: list[ChatMessage]) -> str | None:
    for message in reversed(messages):
        if message.get("role") == "user" and message.get("content"):
            return str(message["content"])
    return None


def _answer_text(messages: list[ChatMessage]) -> str | None:
    for message in reversed(messages):
        if message.get("content"):
            return str(message["content"])
        if message.get("tool_calls"):
            return json.dumps(message["tool_calls"], ensure_ascii=False, separators=(",", ":"), default=str)
    return None


@dataclass
class TraceFacts:
    """What a trace's LLM calls tell its server span."""

    user: Any = None
    session: Any = None
    name: Any = None
    input: str | None = None  # the first call's last user message
    output: str | None = None  # the last call's answer
    last_failed: bool = False

    def size(self) -> int:
        return len(self.input or "") + len(self.output or "") + 64


class RootFacts:
    """Per-destination memory of :class:`TraceFacts`, keyed by trace id, bounded in count and bytes."""

    def __init__(self) -> None:
        self._traces: OrderedDict[int, TraceFacts] = OrderedDict()
        self._bytes = 0

    def remember(self, draft: SpanDraft, inputs: list[ChatMessage] | None,
                 outputs: list[ChatMessage] | None) -> None:
        """Note an LLM span's facts (before the dialect rewrites its attributes)."""
        if draft.parent is None:  # detached (SPANS=genai): no server span will come
            return
        a = draft.attributes
        trace_id = draft.span.context.trace_id
        facts = self._traces.pop(trace_id, None)
        if facts is None:
            facts = TraceFacts()
        else:
            self._bytes -= facts.size()
        facts.user = facts.user or a.get(contract.USER_ID)
        facts.session = facts.session or a.get(contract.SESSION_ID)
        facts.name = facts.name or a.get(contract.TRACE_NAME)
        if facts.input is None and inputs:
            facts.input = _last_user_text(inputs)
        if outputs:
            facts.output = _answer_text(outputs)
        facts.last_failed = a.get(error_attributes.ERROR_TYPE) is not None
        self._traces[trace_id] = facts
        self._bytes += facts.size()
        while self._traces and (len(self._traces) > MAX_REMEMBERED_TRACES or self._bytes > MAX_REMEMBERED_BYTES):
            _, dropped = self._traces.popitem(last=False)
            self._bytes -= dropped.size()

    def take(self, draft: SpanDraft) -> TraceFacts | None:
        """The facts for a server span's trace (forgotten once taken)."""
        facts = self._traces.pop(draft.span.context.trace_id, None)
        if facts is not None:
            self._bytes -= facts.size()
        return facts

    def __len__(self) -> int:
        return len(self._traces)


def root_failure(draft: SpanDraft, facts: TraceFacts | None) -> str | None:
    """Why the request's root span reads as failed (HTTP status >= 400, or its last LLM call failed)."""
    a = draft.attributes
    status = a.get("http.response.status_code") or a.get("http.status_code")
    if isinstance(status, int) and status >= 400:
        return f"HTTP {status}"
    if facts is not None and facts.last_failed:
        return "LLM call failed"
    return None
