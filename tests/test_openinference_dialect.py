"""The OpenInference dialect on its own: what the trace's root span gets from its LLM calls, and
that what it holds for root spans still to come stays bounded (a server span may never arrive)."""

from __future__ import annotations

import json

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, StatusCode

from or_middleware import spans as contract
from or_middleware.export.draft import SpanDraft
from or_middleware.export.openinference import PRIVACY_PLACEHOLDER, OpenInferenceDialect
from or_middleware.export.root_facts import MAX_REMEMBERED_BYTES, MAX_REMEMBERED_TRACES


def span(trace_id: int, span_id: int, *, genai: bool, parent: int | None = None, **attributes) -> ReadableSpan:
    return ReadableSpan(
        name="chat m" if genai else "POST /ask",
        context=SpanContext(trace_id, span_id, is_remote=False),
        parent=SpanContext(trace_id, parent, is_remote=False) if parent else None,
        attributes=attributes,
        kind=SpanKind.CLIENT if genai else SpanKind.SERVER,
        start_time=1_000, end_time=2_000,
        instrumentation_scope=InstrumentationScope(contract.GENAI_SCOPE if genai else "opentelemetry.asgi"),
    )


def messages(role: str, text: str) -> str:
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]}])


def run(dialect: OpenInferenceDialect, readable: ReadableSpan) -> ReadableSpan:
    draft = SpanDraft(readable)
    dialect(draft)
    return draft.build()


def test_the_root_span_gets_user_session_input_output_and_the_last_call_status():
    dialect = OpenInferenceDialect(privacy=False)
    common = {contract.USER_ID: "alice", contract.SESSION_ID: "s1", "gen_ai.request.model": "openai/gpt-4o"}
    first = run(dialect, span(1, 11, genai=True, parent=10, **common, **{
        "gen_ai.input.messages": messages("user", "first question"), "error.type": "429"}))
    assert first.status.status_code is StatusCode.ERROR and first.status.description == "HTTP 429"
    run(dialect, span(1, 12, genai=True, parent=10, **common, **{
        "gen_ai.input.messages": messages("user", "retried"), "gen_ai.output.messages": messages("assistant", "42")}))
    root = run(dialect, span(1, 10, genai=False, **{"http.response.status_code": 200}))
    a = root.attributes
    assert a["openinference.span.kind"] == "CHAIN" and a["user.id"] == "alice" and a["session.id"] == "s1"
    assert a["input.value"] == "first question" and a["output.value"] == "42"
    assert root.status.status_code is StatusCode.OK  # the retry succeeded: the request did
    failed_root = run(dialect, span(2, 20, genai=False, **{"http.response.status_code": 502}))
    assert failed_root.status.status_code is StatusCode.ERROR


def test_privacy_mode_puts_a_placeholder_not_content():
    dialect = OpenInferenceDialect(privacy=True)
    llm = run(dialect, span(3, 31, genai=True, parent=30,
                            **{"gen_ai.request.model": "m", "gen_ai.response.id": "gen-1"}))
    root = run(dialect, span(3, 30, genai=False))
    for a in (llm.attributes, root.attributes):
        assert a["input.value"] == a["output.value"] == PRIVACY_PLACEHOLDER
    assert "gen_ai.response.id" not in llm.attributes


def test_what_waits_for_root_spans_is_bounded_in_traces_and_bytes():
    dialect = OpenInferenceDialect(privacy=False)
    big = messages("user", "x" * 20_000)
    for trace in range(1, MAX_REMEMBERED_TRACES * 2):  # their server spans never come
        run(dialect, span(trace, 1, genai=True, parent=2, **{"gen_ai.input.messages": big,
                                                              "gen_ai.output.messages": big}))
        memory = dialect._facts
        assert len(memory._traces) <= MAX_REMEMBERED_TRACES and memory._bytes <= MAX_REMEMBERED_BYTES
    assert memory._bytes == sum(facts.size() for facts in memory._traces.values())
