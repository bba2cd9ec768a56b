"""The ``openinference`` dialect (Arize Phoenix, Arize AX): the attributes OpenInference's own
instrumentations send, and nothing else, so each span reads like one of theirs.

OpenInference semantic conventions:
https://github.com/Arize-ai/openinference/blob/main/spec/semantic_conventions.md

- An LLM (or EMBEDDING) span keeps ``openinference.span.kind``, ``llm.model_name`` /
  ``llm.provider`` / ``llm.system``, ``llm.token_count.*``, ``llm.invocation_parameters`` (with
  ``model`` and ``tool_choice``, as openinference-instrumentation-openai sends them),
  ``llm.finish_reason``, ``session.id``, ``user.id``, ``metadata`` and, when the destination gets
  content, ``input.value`` / ``output.value``, ``llm.input_messages.*`` / ``llm.output_messages.*``,
  ``llm.tools.*``. The span contract's ``gen_ai.*``, ``trace.*`` and ``or_middleware.*`` names are
  not sent: Phoenix reads none of them (it would map ``gen_ai.response.*`` into a made-up output).
- Cost: Phoenix prices tokens by its own table and ignores ``llm.cost.*``; the provider-reported
  cost is also put in ``metadata`` (``cost_usd``, ``input_cost_usd``, ``output_cost_usd``,
  ``cost_source``), where Phoenix shows it and can filter on it.
- Status: OK for a call that succeeded, ERROR with the message (privacy mode: the error type) and
  an ``exception`` event for one that failed. Streams get OpenInference's first-token event.
- The request's server span (``SPANS=traces`` or ``all``) becomes the root CHAIN span of the
  trace and carries the user, the session and, with content, the request's input (the last user
  message of its first LLM call) and output (the answer of its last), so Phoenix's traces table,
  sessions and turns are filled; it reads ERROR when the request or its last LLM call failed.
- Privacy mode: a clear placeholder in ``input.value`` / ``output.value`` instead of nothing.

The dialect runs after privacy, so it only ever sees (and copies) content a destination may get.
"""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.sdk.trace import Event
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes import error_attributes
from opentelemetry.trace import Status, StatusCode

from or_middleware import spans as contract
from or_middleware.export.draft import SpanDraft
from or_middleware.export.messages import ChatMessage, input_chat_messages, load_json, output_chat_messages
from or_middleware.export.root_facts import RootFacts, root_failure
from or_middleware.semconv_mode import CACHE_WRITE_INPUT_TOKENS

PRIVACY_PLACEHOLDER = "[not recorded: privacy mode is on for this destination]"
FIRST_TOKEN_EVENT = "First Token Stream Event"  # openinference-instrumentation-openai's name
_CHECK = "or_middleware.check"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _put(a: dict[str, Any], key: str, value: Any) -> None:
    if value is not None and value != "":
        a[key] = value


def _model(a: dict[str, Any]) -> Any:
    return a.get(gen_ai.GEN_AI_RESPONSE_MODEL) or a.get(gen_ai.GEN_AI_REQUEST_MODEL)


def _system(a: dict[str, Any]) -> str | None:
    """``llm.system``: the model's maker (``openai/gpt-4o`` -> ``openai``), else the API called."""
    model = a.get(gen_ai.GEN_AI_REQUEST_MODEL)
    if isinstance(model, str) and "/" in model:
        return model.split("/", 1)[0]
    provider = a.get(gen_ai.GEN_AI_PROVIDER_NAME)
    return provider if isinstance(provider, str) else None


def _invocation_parameters(a: dict[str, Any]) -> str:
    params: dict[str, Any] = {"model": a.get(gen_ai.GEN_AI_REQUEST_MODEL)}
    for key, value in a.items():
        if key.startswith("gen_ai.request.") and key not in (gen_ai.GEN_AI_REQUEST_MODEL, gen_ai.GEN_AI_REQUEST_STREAM):
            params[key.removeprefix("gen_ai.request.")] = value
    if a.get(gen_ai.GEN_AI_REQUEST_STREAM):
        params["stream"] = True
    return _json({k: v for k, v in params.items() if v is not None})


def _metadata(a: dict[str, Any]) -> dict[str, Any]:
    prefix = contract.TRACE_METADATA_PREFIX
    meta: dict[str, Any] = {k.removeprefix(prefix): v for k, v in a.items() if k.startswith(prefix)}
    for key, name in ((contract.USAGE_COST, "cost_usd"), (contract.USAGE_INPUT_COST, "input_cost_usd"),
                      (contract.USAGE_OUTPUT_COST, "output_cost_usd"), (contract.COST_SOURCE, "cost_source")):
        _put(meta, name, a.get(key))
    return meta


def _flatten_messages(out: dict[str, Any], prefix: str, messages: list[ChatMessage]) -> None:
    for i, message in enumerate(messages):
        base = f"{prefix}.{i}.message"
        out[f"{base}.role"] = message["role"]
        _put(out, f"{base}.content", message.get("content"))
        _put(out, f"{base}.tool_call_id", message.get("tool_call_id"))
        for j, call in enumerate(message.get("tool_calls", [])):
            call_base = f"{base}.tool_calls.{j}.tool_call"
            _put(out, f"{call_base}.id", call.get("id"))
            _put(out, f"{call_base}.function.name", call.get("name"))
            _put(out, f"{call_base}.function.arguments", call.get("arguments"))


class OpenInferenceDialect:
    """One per destination (it remembers, per trace, what the server span will need)."""

    def __init__(self, *, privacy: bool) -> None:
        self._privacy = privacy
        self._facts = RootFacts()

    def __call__(self, draft: SpanDraft) -> None:
        if draft.is_genai:
            self._llm(draft)
        else:
            self._root(draft)

    # -- LLM spans -----------------------------------------------------------------------------

    def _llm(self, draft: SpanDraft) -> None:
        a = draft.attributes
        embeddings = a.get(gen_ai.GEN_AI_OPERATION_NAME) == "embeddings"
        out: dict[str, Any] = {"openinference.span.kind": "EMBEDDING" if embeddings else "LLM"}
        _put(out, "embedding.model_name" if embeddings else "llm.model_name", _model(a))
        _put(out, "llm.provider", a.get(gen_ai.GEN_AI_PROVIDER_NAME))
        _put(out, "llm.system", _system(a))
        _put(out, "llm.token_count.prompt", a.get(gen_ai.GEN_AI_USAGE_INPUT_TOKENS))
        _put(out, "llm.token_count.completion", a.get(gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS))
        _put(out, "llm.token_count.total", a.get(contract.USAGE_TOTAL_TOKENS))
        _put(out, "llm.token_count.prompt_details.cache_read", a.get(gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS))
        _put(out, "llm.token_count.prompt_details.cache_write",
             a.get(gen_ai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, a.get(CACHE_WRITE_INPUT_TOKENS)))
        _put(out, "llm.token_count.completion_details.reasoning", a.get(gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS))
        _put(out, "llm.cost.total", a.get(contract.USAGE_COST))  # Arize AX reads these; Phoenix does not
        _put(out, "llm.cost.prompt", a.get(contract.USAGE_INPUT_COST))
        _put(out, "llm.cost.completion", a.get(contract.USAGE_OUTPUT_COST))
        out["llm.invocation_parameters"] = _invocation_parameters(a)
        reasons = a.get(gen_ai.GEN_AI_RESPONSE_FINISH_REASONS)
        if reasons:
            out["llm.finish_reason"] = str(next(iter(reasons)))
        _put(out, "session.id", a.get(contract.SESSION_ID))
        _put(out, "user.id", a.get(contract.USER_ID))
        metadata = _metadata(a)
        if metadata:
            out["metadata"] = _json(metadata)
        _put(out, error_attributes.ERROR_TYPE, a.get(error_attributes.ERROR_TYPE))
        _put(out, _CHECK, a.get(_CHECK))
        inputs, outputs = input_chat_messages(a), output_chat_messages(a)
        self._content(out, a, inputs, outputs)
        self._llm_status(draft, a)
        self._first_token(draft, a)
        self._facts.remember(draft, inputs, outputs)
        draft.attributes = out

    def _content(self, out: dict[str, Any], a: dict[str, Any], inputs: list[ChatMessage] | None,
                 outputs: list[ChatMessage] | None) -> None:
        if inputs is not None:
            _flatten_messages(out, "llm.input_messages", inputs)
            out["input.value"], out["input.mime_type"] = _json({"messages": inputs}), "application/json"
        elif isinstance(a.get(gen_ai.GEN_AI_INPUT_MESSAGES), str):  # cut at the content cap: not JSON any more
            out["input.value"], out["input.mime_type"] = a[gen_ai.GEN_AI_INPUT_MESSAGES], "text/plain"
        if outputs is not None:
            _flatten_messages(out, "llm.output_messages", outputs)
            out["output.value"], out["output.mime_type"] = _json({"messages": outputs}), "application/json"
        elif isinstance(a.get(gen_ai.GEN_AI_OUTPUT_MESSAGES), str):
            out["output.value"], out["output.mime_type"] = a[gen_ai.GEN_AI_OUTPUT_MESSAGES], "text/plain"
        tools = load_json(a.get(gen_ai.GEN_AI_TOOL_DEFINITIONS))
        for i, tool in enumerate(tools if isinstance(tools, list) else []):
            out[f"llm.tools.{i}.tool.json_schema"] = _json(tool)
        self._placeholders(out)

    def _placeholders(self, out: dict[str, Any]) -> None:
        if self._privacy:
            for key in ("input", "output"):
                if f"{key}.value" not in out:
                    out[f"{key}.value"], out[f"{key}.mime_type"] = PRIVACY_PLACEHOLDER, "text/plain"

    @staticmethod
    def _llm_status(draft: SpanDraft, a: dict[str, Any]) -> None:
        error_type = a.get(error_attributes.ERROR_TYPE)
        if error_type is None and draft.status.status_code is not StatusCode.ERROR:
            draft.status = Status(StatusCode.OK)
            return
        message = a.get(contract.ERROR_MESSAGE)  # absent in privacy mode: the type only
        kind = f"HTTP {error_type}" if str(error_type).isdigit() else str(error_type or "error")
        description = f"{kind}: {message}" if message else kind
        draft.status = Status(StatusCode.ERROR, description)
        if not any(event.name == "exception" for event in draft.events):
            attributes = {"exception.type": kind, "exception.escaped": False}
            if message:
                attributes["exception.message"] = str(message)
            draft.events = [*draft.events, Event("exception", attributes, draft.span.end_time)]

    @staticmethod
    def _first_token(draft: SpanDraft, a: dict[str, Any]) -> None:
        ttfc = a.get(gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)
        if a.get(gen_ai.GEN_AI_REQUEST_STREAM) and isinstance(ttfc, int | float) and draft.span.start_time:
            draft.events = [*draft.events, Event(FIRST_TOKEN_EVENT, {}, draft.span.start_time + int(ttfc * 1e9))]

    # -- the server span: root of the trace -----------------------------------------------------

    def _root(self, draft: SpanDraft) -> None:
        a = draft.attributes
        a.setdefault("openinference.span.kind", "CHAIN")
        facts = self._facts.take(draft)
        if facts is not None:
            _put(a, "user.id", facts.user)
            _put(a, "session.id", facts.session)
            if facts.input is not None:
                a["input.value"], a["input.mime_type"] = facts.input, "text/plain"
            if facts.output is not None:
                a["output.value"], a["output.mime_type"] = facts.output, "text/plain"
            self._placeholders(a)
        failure = root_failure(draft, facts)
        if draft.status.status_code is StatusCode.ERROR:
            return
        draft.status = Status(StatusCode.ERROR, failure) if failure else Status(StatusCode.OK)
