"""Dialects: what each platform needs beside the span contract to show a generation with
tokens, cost, user and session. Each adds attributes to a destination's draft, never removes
the semconv ones, and derives content fields only from content still on the draft (so a
privacy-mode destination gets none: privacy runs first).

- ``semconv``: the span contract as is.
- ``openinference`` (Arize, Phoenix): export/openinference.py; unlike the others it sends only
  what OpenInference names, and fills the trace's root span.
- ``langfuse``: ``langfuse.observation.*``, ``langfuse.user.id`` / ``session.id`` / ``trace.name``.
- ``langsmith``: ``langsmith.span.kind``, ``langsmith.trace.*``, ``langsmith.metadata.*``,
  ``gen_ai.prompt`` / ``gen_ai.completion``.

Langfuse, LangSmith and OpenInference also fill the request's server span, the trace's root
(``SPANS=traces``, their presets' default), from its LLM calls (export/root_facts.py): the user,
the session, the trace name and, when the destination gets content, the request's input (the
first call's last user message) and output (the last call's answer), so each backend's trace
list shows who asked what and what came back. In privacy mode the LLM spans carry no content
(privacy runs first), so the root gets none either.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes import error_attributes

from or_middleware import spans as contract
from or_middleware.export.draft import DraftTransform, SpanDraft
from or_middleware.export.messages import input_chat_messages, output_chat_messages
from or_middleware.export.openinference import OpenInferenceDialect
from or_middleware.export.root_facts import RootFacts, TraceFacts, root_failure

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


# -- Langfuse ------------------------------------------------------------------------------------


def _iso(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).isoformat().replace("+00:00", "Z")


def _langfuse_root(draft: SpanDraft, facts: TraceFacts | None) -> None:
    """Langfuse's trace-level attributes on the root span (https://langfuse.com/docs/opentelemetry/
    get-started, "Property mapping": ``langfuse.user.id``, ``langfuse.session.id``,
    ``langfuse.trace.name``, ``langfuse.trace.input`` / ``langfuse.trace.output``)."""
    a = draft.attributes
    if facts is not None:
        _put(a, "langfuse.user.id", facts.user)
        _put(a, "langfuse.session.id", facts.session)
        _put(a, "langfuse.trace.name", facts.name)
        _put(a, "langfuse.trace.input", facts.input)
        _put(a, "langfuse.trace.output", facts.output)
    failure = root_failure(draft, facts)
    if failure:
        a["langfuse.observation.level"] = "ERROR"
        a["langfuse.observation.status_message"] = failure


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


def _langsmith_root(draft: SpanDraft, facts: TraceFacts | None) -> None:
    """LangSmith's run fields on the root chain span (https://docs.smith.langchain.com/observability/
    how_to_guides/trace_with_opentelemetry: ``langsmith.trace.session_id``, ``langsmith.metadata.*``,
    ``gen_ai.prompt`` -> inputs, ``gen_ai.completion`` -> outputs)."""
    a = draft.attributes
    a.setdefault("langsmith.span.kind", "chain")
    if facts is None:
        return
    _put(a, "langsmith.trace.name", facts.name)
    _put(a, "langsmith.trace.session_id", facts.session)
    _put(a, "langsmith.metadata.session_id", facts.session)
    _put(a, "langsmith.metadata.user_id", facts.user)
    if facts.input is not None:
        a[gen_ai.GEN_AI_PROMPT] = _json({"input": facts.input})
    if facts.output is not None:
        a[gen_ai.GEN_AI_COMPLETION] = _json({"output": facts.output})


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


class RootFillingDialect:
    """A stateless per-span dialect plus the trace's root span filled from its LLM calls."""

    def __init__(self, per_span: DraftTransform, root: Callable[[SpanDraft, TraceFacts | None], None]) -> None:
        self._per_span = per_span
        self._root = root
        self._facts = RootFacts()

    def __call__(self, draft: SpanDraft) -> None:
        if draft.is_genai:  # remember before the dialect adds its names (content is what privacy left)
            a = draft.attributes
            self._facts.remember(draft, input_chat_messages(a), output_chat_messages(a))
            self._per_span(draft)
        else:
            self._per_span(draft)
            self._root(draft, self._facts.take(draft))


_ROOTS: dict[str, Callable[[SpanDraft, TraceFacts | None], None]] = {
    "langfuse": _langfuse_root,
    "langsmith": _langsmith_root,
}

DIALECTS: dict[str, DraftTransform] = {
    "semconv": semconv,
    "langfuse": langfuse,
    "langsmith": langsmith,
}


def dialect_for(name: str, *, privacy: bool) -> DraftTransform:
    """The destination's dialect; those that fill the root span keep per-trace state, so each
    destination has its own."""
    if name == "openinference":
        return OpenInferenceDialect(privacy=privacy)
    if name in _ROOTS:
        return RootFillingDialect(DIALECTS[name], _ROOTS[name])
    return DIALECTS[name]
