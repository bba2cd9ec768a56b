"""Dialects: what each platform needs beside the span contract to show a generation with
tokens, cost, user and session. Each adds attributes to a destination's draft, never removes
the semconv ones, and derives content fields only from content still on the draft (so a
privacy-mode destination gets none: privacy runs first).

- ``semconv``: the span contract as is.
- ``openinference`` (Arize, Phoenix): ``openinference.span.kind``, ``llm.*``, ``input.value`` /
  ``output.value``, ``llm.input_messages.*`` / ``llm.output_messages.*``, ``metadata``.
- ``langfuse``: ``langfuse.observation.*``, ``langfuse.user.id`` / ``session.id`` / ``trace.name``.
- ``langsmith``: ``langsmith.span.kind``, ``langsmith.trace.*``, ``langsmith.metadata.*``,
  ``gen_ai.prompt`` / ``gen_ai.completion``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes import error_attributes

from or_middleware import spans as contract
from or_middleware.export.draft import DraftTransform, SpanDraft
from or_middleware.export.messages import ChatMessage, content_text, input_chat_messages, output_chat_messages

_REQUEST_PARAM_PREFIX = "gen_ai.request."
_NOT_PARAMS = {gen_ai.GEN_AI_REQUEST_MODEL, gen_ai.GEN_AI_REQUEST_STREAM}


def _model(a: Mapping[str, Any]) -> Any:
    return a.get(gen_ai.GEN_AI_RESPONSE_MODEL) or a.get(gen_ai.GEN_AI_REQUEST_MODEL)


def _put(a: dict[str, Any], key: str, value: Any) -> None:
    if value is not None and value != "":
        a[key] = value


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _request_params(a: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key.removeprefix(_REQUEST_PARAM_PREFIX): value
        for key, value in a.items()
        if key.startswith(_REQUEST_PARAM_PREFIX) and key not in _NOT_PARAMS
    }


def _trace_metadata(a: Mapping[str, Any]) -> dict[str, Any]:
    prefix = contract.TRACE_METADATA_PREFIX
    return {key.removeprefix(prefix): value for key, value in a.items() if key.startswith(prefix)}


def _is_error(draft: SpanDraft) -> bool:
    return draft.attributes.get(error_attributes.ERROR_TYPE) is not None


def semconv(draft: SpanDraft) -> None:
    return None


# -- OpenInference -------------------------------------------------------------------------------


def _flatten_messages(a: dict[str, Any], prefix: str, messages: list[ChatMessage]) -> None:
    for i, message in enumerate(messages):
        base = f"{prefix}.{i}.message"
        a[f"{base}.role"] = message["role"]
        _put(a, f"{base}.content", message.get("content"))
        _put(a, f"{base}.tool_call_id", message.get("tool_call_id"))
        for j, call in enumerate(message.get("tool_calls", [])):
            call_base = f"{base}.tool_calls.{j}.tool_call"
            _put(a, f"{call_base}.id", call.get("id"))
            _put(a, f"{call_base}.function.name", call.get("name"))
            _put(a, f"{call_base}.function.arguments", call.get("arguments"))


def openinference(draft: SpanDraft) -> None:
    a = draft.attributes
    if not draft.is_genai:
        a.setdefault("openinference.span.kind", "CHAIN")
        return
    embeddings = a.get(gen_ai.GEN_AI_OPERATION_NAME) == "embeddings"
    a["openinference.span.kind"] = "EMBEDDING" if embeddings else "LLM"
    _put(a, "embedding.model_name" if embeddings else "llm.model_name", _model(a))
    _put(a, "llm.provider", a.get(gen_ai.GEN_AI_PROVIDER_NAME))
    _put(a, "llm.token_count.prompt", a.get(gen_ai.GEN_AI_USAGE_INPUT_TOKENS))
    _put(a, "llm.token_count.completion", a.get(gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS))
    _put(a, "llm.token_count.total", a.get(contract.USAGE_TOTAL_TOKENS))
    _put(a, "llm.token_count.prompt_details.cache_read", a.get(gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS))
    _put(a, "llm.token_count.prompt_details.cache_write", a.get(gen_ai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS))
    _put(a, "llm.token_count.completion_details.reasoning", a.get(gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS))
    _put(a, "llm.cost.total", a.get(contract.USAGE_COST))
    _put(a, "llm.cost.prompt", a.get(contract.USAGE_INPUT_COST))
    _put(a, "llm.cost.completion", a.get(contract.USAGE_OUTPUT_COST))
    params = _request_params(a)
    if params:
        a["llm.invocation_parameters"] = _json(params)
    metadata = _trace_metadata(a)
    if metadata:
        a["metadata"] = _json(metadata)
    inputs = input_chat_messages(a)
    if inputs is not None:
        _flatten_messages(a, "llm.input_messages", inputs)
    outputs = output_chat_messages(a)
    if outputs is not None:
        _flatten_messages(a, "llm.output_messages", outputs)
    raw_input = content_text(a, gen_ai.GEN_AI_INPUT_MESSAGES)
    if raw_input is not None:
        a["input.value"] = _json({"messages": inputs}) if inputs is not None else raw_input
        a["input.mime_type"] = "application/json" if inputs is not None else "text/plain"
    raw_output = content_text(a, gen_ai.GEN_AI_OUTPUT_MESSAGES)
    if raw_output is not None:
        a["output.value"] = _json({"messages": outputs}) if outputs is not None else raw_output
        a["output.mime_type"] = "application/json" if outputs is not None else "text/plain"


# -- Langfuse ------------------------------------------------------------------------------------


def _iso(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).isoformat().replace("+00:00", "Z")


def langfuse(draft: SpanDraft) -> None:
    a = draft.attributes
    _put(a, "langfuse.user.id", a.get(contract.USER_ID))
    _put(a, "langfuse.session.id", a.get(contract.SESSION_ID))
    _put(a, "langfuse.trace.name", a.get(contract.TRACE_NAME))
    for key, value in _trace_metadata(a).items():
        a[f"langfuse.trace.metadata.{key}"] = value
    if not draft.is_genai:
        return
    embeddings = a.get(gen_ai.GEN_AI_OPERATION_NAME) == "embeddings"
    a["langfuse.observation.type"] = "embedding" if embeddings else "generation"
    _put(a, "langfuse.observation.model.name", _model(a))
    params = _request_params(a)
    if params:
        a["langfuse.observation.model.parameters"] = _json(params)
    ttfc = a.get(gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)
    if isinstance(ttfc, int | float) and draft.span.start_time:
        a["langfuse.observation.completion_start_time"] = _iso(draft.span.start_time + int(ttfc * 1e9))
    cost = a.get(contract.USAGE_COST)  # gen_ai.usage.cost is already there: Langfuse reads it as is
    if cost is not None:
        details = {"input": a.get(contract.USAGE_INPUT_COST), "output": a.get(contract.USAGE_OUTPUT_COST),
                   "total": cost}
        a["langfuse.observation.cost_details"] = _json({k: v for k, v in details.items() if v is not None})
    if _is_error(draft):
        a["langfuse.observation.level"] = "ERROR"
        a["langfuse.observation.status_message"] = str(a[error_attributes.ERROR_TYPE])
    inputs = input_chat_messages(a)
    if inputs is not None:
        a["langfuse.observation.input"] = _json(inputs)
    outputs = output_chat_messages(a)
    if outputs is not None:
        a["langfuse.observation.output"] = _json(outputs[0] if len(outputs) == 1 else outputs)


# -- LangSmith -----------------------------------------------------------------------------------


def langsmith(draft: SpanDraft) -> None:
    a = draft.attributes
    if not draft.is_genai:
        a.setdefault("langsmith.span.kind", "chain")
        return
    embeddings = a.get(gen_ai.GEN_AI_OPERATION_NAME) == "embeddings"
    a["langsmith.span.kind"] = "embedding" if embeddings else "llm"
    _put(a, "gen_ai.system", a.get(gen_ai.GEN_AI_PROVIDER_NAME))  # LangSmith's ls_provider
    _put(a, "langsmith.trace.name", a.get(contract.TRACE_NAME))
    session = a.get(contract.SESSION_ID)
    _put(a, "langsmith.trace.session_id", session)
    _put(a, "langsmith.metadata.session_id", session)  # LangSmith threads group on this key
    _put(a, "langsmith.metadata.user_id", a.get(contract.USER_ID))
    for key, value in _trace_metadata(a).items():
        a[f"langsmith.metadata.{key}"] = value
    inputs = input_chat_messages(a)
    if inputs is not None:
        a[gen_ai.GEN_AI_PROMPT] = _json({"messages": inputs})
    outputs = output_chat_messages(a)
    if outputs is not None:
        a[gen_ai.GEN_AI_COMPLETION] = _json({"messages": outputs})


DIALECTS: dict[str, DraftTransform] = {
    "semconv": semconv,
    "openinference": openinference,
    "langfuse": langfuse,
    "langsmith": langsmith,
}
