"""Pieces shared by every OpenAI-compatible format (chat, completions, Responses, embeddings).

Covers OpenRouter's additions too: ``user`` / ``session_id`` / ``trace`` request fields,
``usage.cost`` and its details, ``is_byok``, the served-by ``provider`` field, and its
``{"error": {"code": <int>, "message", "metadata"}}`` error shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from or_middleware.genai.fields import as_dict, as_float, as_int, as_str, get_path, to_text
from or_middleware.genai.record import GenerationRecord

__all__ = [
    "finish_reasons",
    "read_error_body",
    "read_error_object",
    "read_identity",
    "read_provider_cost",
    "read_sampling_params",
    "read_served_by",
    "read_usage",
    "tool_choice_text",
]

# `trace` keys that are linkage, not user metadata (Broadcast does not export them either).
_TRACE_LINK_KEYS = frozenset({"trace_id", "parent_span_id", "span_name", "generation_name", "trace_name"})

_FLOAT_PARAMS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
}


def read_identity(body: Mapping[str, Any], record: GenerationRecord) -> None:
    """Model, stream flag, and the user / session / trace fields (OpenAI ``user``, OpenRouter rest)."""
    model = as_str(body.get("model"))
    if model:
        record.request_model = model
    record.stream = body.get("stream") is True
    user = as_str(body.get("user"))
    if user:
        record.user = user
    session = as_str(body.get("session_id"))
    if session:
        record.session = session
    trace = body.get("trace")
    if isinstance(trace, Mapping):
        name = trace.get("trace_name")
        if isinstance(name, str) and name:
            record.trace_name = name
        for key, value in trace.items():
            if isinstance(key, str) and key not in _TRACE_LINK_KEYS and value is not None:
                record.trace_metadata[key] = to_text(value)


def tool_choice_text(value: object) -> str | None:
    """``tool_choice`` as text: ``auto`` / ``none`` / ``required`` (Anthropic: ``any``), or the forced
    tool's name (a function name is not content). OpenInference shows it among the invocation
    parameters."""
    if isinstance(value, str):
        return value[:64] or None
    if isinstance(value, Mapping):
        name = as_str(get_path(value, "function", "name")) or as_str(value.get("name"))
        kind = as_str(value.get("type"))
        return (name or kind or "")[:128] or None
    return None


def read_sampling_params(
    body: Mapping[str, Any],
    record: GenerationRecord,
    *,
    max_tokens_keys: tuple[str, ...] = ("max_completion_tokens", "max_tokens"),
) -> None:
    """Request parameters as semconv ``gen_ai.request.*`` suffixes."""
    params = record.request_params
    for key in max_tokens_keys:
        value = as_int(body.get(key))
        if value is not None:
            params["max_tokens"] = value
            break
    for key, suffix in _FLOAT_PARAMS.items():
        number = as_float(body.get(key))
        if number is not None:
            params[suffix] = number
    top_k = as_int(body.get("top_k"))
    if top_k is not None:
        params["top_k"] = top_k
    seed = as_int(body.get("seed"))
    if seed is not None:
        params["seed"] = seed
    stop = body.get("stop")
    if isinstance(stop, str) and stop:
        params["stop_sequences"] = [stop]
    elif isinstance(stop, list):
        stops = [item for item in stop if isinstance(item, str)]
        if stops:
            params["stop_sequences"] = stops
    n = as_int(body.get("n"))
    if n is not None and n != 1:
        params["choice.count"] = n
    tool_choice = tool_choice_text(body.get("tool_choice"))
    if tool_choice:
        params["tool_choice"] = tool_choice


def read_usage(usage: object, record: GenerationRecord) -> None:
    """Chat-Completions-style usage (also legacy completions and embeddings).

    ``prompt_tokens`` already includes cached tokens, as semconv wants for input_tokens.
    Fields absent from this usage object leave the record as it was, so a later partial
    usage object (some servers send one per chunk) never erases an earlier full one.
    """
    if not isinstance(usage, Mapping):
        return
    _set_int(record, "input_tokens", usage.get("prompt_tokens"))
    _set_int(record, "output_tokens", usage.get("completion_tokens"))
    _set_int(record, "total_tokens", usage.get("total_tokens"))
    _set_int(record, "cache_read_tokens", get_path(usage, "prompt_tokens_details", "cached_tokens"))
    _set_int(record, "cache_creation_tokens", get_path(usage, "prompt_tokens_details", "cache_write_tokens"))
    _set_int(record, "reasoning_tokens", get_path(usage, "completion_tokens_details", "reasoning_tokens"))
    read_provider_cost(usage, record)


def read_provider_cost(usage: Mapping[str, Any], record: GenerationRecord) -> None:
    """OpenRouter's ``usage.cost`` (USD) and, when split, the upstream prompt/completion cost."""
    cost = as_float(usage.get("cost"))
    if cost is not None:
        record.cost = cost
        record.cost_source = "provider"
        details = as_dict(usage.get("cost_details"))
        input_cost = as_float(details.get("upstream_inference_prompt_cost"))
        output_cost = as_float(details.get("upstream_inference_completions_cost"))
        if input_cost is not None:
            record.input_cost = input_cost
        if output_cost is not None:
            record.output_cost = output_cost
    byok = usage.get("is_byok")
    if isinstance(byok, bool):
        record.is_byok = byok


def read_error_object(error: object, record: GenerationRecord, *, fallback: str = "error") -> bool:
    """An ``error`` member (OpenAI ``{message, type, code}`` or OpenRouter ``{code: int, message}``).

    Returns whether it recorded an error. A string code is preferred: it is the most specific
    stable name (OpenAI's 429 has type "tokens" but code "rate_limit_exceeded"); then the
    type; OpenRouter has only a numeric code, which mirrors the HTTP status.
    """
    if isinstance(error, str) and error:
        record.set_error(fallback, error)
        return True
    if not isinstance(error, Mapping):
        return False
    kind = error.get("type")
    code = error.get("code")
    if isinstance(code, str) and code:
        error_type = code
    elif isinstance(kind, str) and kind and kind != "error":
        error_type = kind
    elif (number := as_int(code)) is not None:
        error_type = str(number)
    else:
        error_type = fallback
    message = error.get("message")
    record.set_error(error_type, message if isinstance(message, str) else None)
    return True


def read_error_body(body: object, record: GenerationRecord) -> None:
    """A JSON error body of an OpenAI-compatible server.

    Besides OpenAI's and OpenRouter's ``{"error": {...}}`` this accepts the flat
    ``{"object": "error", "type", "message", "code"}`` of vLLM-style servers and FastAPI's
    ``{"detail": "..."}``. Records nothing when the body names no error; the caller then
    falls back to the HTTP status.
    """
    fallback = f"http_{record.status_code}" if record.status_code else "error"
    if isinstance(body, Mapping):
        if "error" in body and read_error_object(body["error"], record, fallback=fallback):
            return
        if "type" in body or "code" in body or isinstance(body.get("message"), str):
            read_error_object(body, record, fallback=fallback)
            return
        detail = body.get("detail")
        if isinstance(detail, str) and detail:
            record.set_error(fallback, detail)
    elif isinstance(body, str) and body:
        record.set_error(fallback, body)


def read_served_by(body: Mapping[str, Any], record: GenerationRecord) -> None:
    """``id``, ``model`` and OpenRouter's top-level ``provider`` of a response or chunk."""
    response_id = as_str(body.get("id"))
    if response_id and record.response_id is None:
        record.response_id = response_id
    model = as_str(body.get("model"))
    if model:
        record.response_model = model
    provider = as_str(body.get("provider"))
    if provider:
        record.served_by = provider


def finish_reasons(choices: list[Any]) -> tuple[list[str], list[str]]:
    """Finish reasons (and OpenRouter's native ones) of complete choices, by choice index."""
    ordered = sorted(
        (choice for choice in choices if isinstance(choice, Mapping)),
        key=lambda choice: as_int(choice.get("index")) or 0,
    )
    reasons = [reason for choice in ordered if (reason := as_str(choice.get("finish_reason")))]
    native = [reason for choice in ordered if (reason := as_str(choice.get("native_finish_reason")))]
    return reasons, native


def _set_int(record: GenerationRecord, name: str, value: object) -> None:
    number = as_int(value)
    if number is not None:
        setattr(record, name, number)
