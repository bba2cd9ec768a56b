"""Each dialect against the attribute mapping its vendor documents (backends that cannot run here).

- Langfuse, "OpenTelemetry (OTEL) for LLM Observability", property mapping
  (https://langfuse.com/integrations/native/opentelemetry): a generation is
  ``langfuse.observation.type=generation`` with ``langfuse.observation.model.name`` /
  ``model.parameters`` / ``cost_details`` / ``completion_start_time`` / ``level`` /
  ``status_message`` / ``input`` / ``output``; the trace takes ``user.id`` / ``session.id`` (or
  ``langfuse.user.id`` / ``langfuse.session.id``), ``langfuse.trace.name`` and
  ``langfuse.trace.metadata.*``.
- LangSmith, "Trace with OpenTelemetry" (https://docs.langchain.com/langsmith/trace-with-opentelemetry):
  ``langsmith.span.kind``, ``langsmith.trace.name``, ``langsmith.trace.session_id``,
  ``langsmith.metadata.*``, ``gen_ai.system``, ``gen_ai.prompt`` / ``gen_ai.completion``, and the
  ``gen_ai.usage.*`` token counts.
- OpenInference (Phoenix, Arize AX), the semantic conventions
  (https://github.com/Arize-ai/openinference/blob/main/spec/semantic_conventions.md); compared with
  OpenInference's own spans in a real Phoenix by tests/test_phoenix_comparison.py.
"""

from __future__ import annotations

import json

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind

from or_middleware import spans as contract
from or_middleware.export.dialects import dialect_for
from or_middleware.export.draft import SpanDraft

MESSAGES_IN = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "hi"}]}])
MESSAGES_OUT = json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "hello"}],
                            "finish_reason": "stop"}])
GENAI = {
    "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openrouter", "gen_ai.request.model": "openai/gpt-4o",
    "gen_ai.response.model": "openai/gpt-4o-2024", "gen_ai.request.temperature": 0.2, "gen_ai.request.stream": True,
    "gen_ai.usage.input_tokens": 3, "gen_ai.usage.output_tokens": 5, contract.USAGE_COST: 0.01,
    contract.USAGE_INPUT_COST: 0.004, contract.USAGE_OUTPUT_COST: 0.006,
    "gen_ai.response.time_to_first_chunk": 0.25, contract.USER_ID: "alice", contract.SESSION_ID: "s1",
    contract.TRACE_NAME: "checkout", f"{contract.TRACE_METADATA_PREFIX}order": "A-17",
    "gen_ai.input.messages": MESSAGES_IN, "gen_ai.output.messages": MESSAGES_OUT,
    "gen_ai.response.finish_reasons": ["stop"],
}


def transformed(dialect: str, **overrides) -> dict:
    span = ReadableSpan(name="chat openai/gpt-4o", context=SpanContext(1, 2, is_remote=False),
                        attributes={**GENAI, **overrides}, kind=SpanKind.CLIENT, start_time=10**18,
                        end_time=10**18 + 10**9, instrumentation_scope=InstrumentationScope(contract.GENAI_SCOPE))
    draft = SpanDraft(span)
    dialect_for(dialect, privacy=False)(draft)
    return draft.attributes


def test_langfuse_reads_a_generation_with_its_trace_fields():
    a = transformed("langfuse")
    assert a["langfuse.observation.type"] == "generation"
    assert a["langfuse.observation.model.name"] == "openai/gpt-4o-2024"
    assert json.loads(a["langfuse.observation.model.parameters"]) == {"temperature": 0.2}
    assert json.loads(a["langfuse.observation.cost_details"]) == {"input": 0.004, "output": 0.006, "total": 0.01}
    assert a["langfuse.observation.completion_start_time"] == "2001-09-09T01:46:40.250000Z"
    assert a["langfuse.user.id"] == "alice" and a["langfuse.session.id"] == "s1"
    assert a["langfuse.trace.name"] == "checkout" and a["langfuse.trace.metadata.order"] == "A-17"
    assert json.loads(a["langfuse.observation.input"])[0] == {"role": "user", "content": "hi"}
    assert json.loads(a["langfuse.observation.output"])["content"] == "hello"
    failed = transformed("langfuse", **{"error.type": "429"})
    assert failed["langfuse.observation.level"] == "ERROR" and failed["langfuse.observation.status_message"] == "429"


def test_langsmith_reads_an_llm_run_with_its_session_and_metadata():
    a = transformed("langsmith")
    assert a["langsmith.span.kind"] == "llm"
    assert a["langsmith.trace.name"] == "checkout" and a["langsmith.trace.session_id"] == "s1"
    assert a["langsmith.metadata.user_id"] == "alice" and a["langsmith.metadata.order"] == "A-17"
    assert a["gen_ai.system"] == "openrouter"
    assert a["gen_ai.usage.input_tokens"] == 3 and a["gen_ai.usage.output_tokens"] == 5
    assert json.loads(a["gen_ai.prompt"])["messages"][0]["content"] == "hi"
    assert json.loads(a["gen_ai.completion"])["messages"][0]["content"] == "hello"


def test_openinference_names_what_the_spec_names_and_nothing_of_the_span_contract():
    a = transformed("openinference")
    assert a["openinference.span.kind"] == "LLM" and a["llm.model_name"] == "openai/gpt-4o-2024"
    assert (a["llm.token_count.prompt"], a["llm.token_count.completion"]) == (3, 5)
    assert json.loads(a["llm.invocation_parameters"]) == {"model": "openai/gpt-4o", "temperature": 0.2, "stream": True}
    assert a["llm.input_messages.0.message.content"] == "hi" and a["llm.output_messages.0.message.content"] == "hello"
    assert a["user.id"] == "alice" and a["session.id"] == "s1" and a["llm.finish_reason"] == "stop"
    assert not [key for key in a if key.startswith(("gen_ai.", "trace.", "or_middleware."))]
