"""The span contract: GenerationRecord -> GenAI span name and attributes.

Semconv names come from opentelemetry-semantic-conventions; the OpenRouter-Broadcast
compatible names (cost, user, session, trace metadata) are defined here once.
"""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes import error_attributes, server_attributes
from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE

from or_middleware.genai.record import GenerationRecord

GENAI_SCOPE = "or_middleware"  # instrumentation scope of every GenAI span

# OpenRouter Broadcast's names, so its dashboards and TraceQL work on our spans unchanged.
USAGE_TOTAL_TOKENS = "gen_ai.usage.total_tokens"
USAGE_COST = "gen_ai.usage.cost"
USAGE_TOTAL_COST = "gen_ai.usage.total_cost"
USAGE_INPUT_COST = "gen_ai.usage.input_cost"
USAGE_OUTPUT_COST = "gen_ai.usage.output_cost"
USER_ID = "user.id"
SESSION_ID = "session.id"
TRACE_NAME = "trace.name"
TRACE_METADATA_PREFIX = "trace.metadata."
SERVED_BY = "trace.metadata.openrouter.provider_name"
FIRST_TOKEN_MS = "trace.metadata.openrouter.first_token_ms"

# Ours.
COST_SOURCE = "or_middleware.cost.source"
CHUNK_COUNT = "or_middleware.stream.chunk_count"
OUTPUT_TOKENS_PER_SECOND = "or_middleware.stream.output_tokens_per_second"
STREAM_OUTCOME = "or_middleware.stream.outcome"  # completed | closed_after_finish | abandoned | error
NATIVE_FINISH_REASONS = "or_middleware.response.native_finish_reasons"
IS_BYOK = "or_middleware.usage.is_byok"
LINKAGE = "or_middleware.linkage"  # linked | kept | skipped_large_body | skipped_not_json | off
ERROR_MESSAGE = "or_middleware.error.message"  # content class: an error body may echo the prompt
# not content: finds identical prompts without storing them (set by the analysis thread, analysis.py)
PROMPT_SHA256 = "or_middleware.prompt.sha256"
SECURITY_EXCERPT = "or_middleware.security.excerpt"  # content class: prompt text a security signal matched

# Attributes that may carry prompt, completion, tool or system text. The privacy filter
# removes exactly these; anything that can carry content must be listed here.
CONTENT_ATTRIBUTES: frozenset[str] = frozenset(
    {
        gen_ai.GEN_AI_SYSTEM_INSTRUCTIONS,
        gen_ai.GEN_AI_INPUT_MESSAGES,
        gen_ai.GEN_AI_OUTPUT_MESSAGES,
        gen_ai.GEN_AI_TOOL_DEFINITIONS,
        gen_ai.GEN_AI_PROMPT,
        gen_ai.GEN_AI_COMPLETION,
        ERROR_MESSAGE,
        SECURITY_EXCERPT,
    }
)

TRUNCATION_MARKER = "…[truncated]"

_PARAM_PREFIX = "gen_ai.request."


def span_name(operation: str, request_model: str | None) -> str:
    return f"{operation} {request_model}" if request_model else operation


def _capped_json(value: Any, max_bytes: int) -> str:
    """``value`` as JSON of at most ``max_bytes`` characters that is still valid JSON of the same
    shape: the longest strings are cut first (each marked), then trailing list items dropped; a
    reader parsing a capped attribute never gets a broken document."""
    text = _dumps(value)
    if len(text) <= max_bytes:  # chars >= bytes/4; judged on chars, cheap and safe
        return text
    strings: list[int] = []
    _string_lengths(value, strings)
    excess = len(text) - max_bytes
    if strings:  # the largest cap c with sum(max(0, len - c)) >= excess, found by bisection
        low, high = 0, max(strings)
        while low < high:
            mid = (low + high + 1) // 2
            if sum(n - mid for n in strings if n > mid) >= excess + len(TRUNCATION_MARKER) * len(strings):
                low = mid
            else:
                high = mid - 1
        value = _cut_strings(value, low)
        text = _dumps(value)
    while len(text) > max_bytes and _drop_last_item(value):
        text = _dumps(value)
    if len(text) > max_bytes:  # nothing left to shrink (a huge number of tiny items): a string
        text = _dumps(text[: max(0, max_bytes // 2 - len(TRUNCATION_MARKER))] + TRUNCATION_MARKER)
    return text


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _string_lengths(value: Any, out: list[int]) -> None:
    if isinstance(value, str):
        out.append(len(value))
    elif isinstance(value, dict):
        for item in value.values():
            _string_lengths(item, out)
    elif isinstance(value, list | tuple):
        for item in value:
            _string_lengths(item, out)


def _cut_strings(value: Any, cap: int) -> Any:
    if isinstance(value, str):
        return value if len(value) <= cap else value[:cap] + TRUNCATION_MARKER
    if isinstance(value, dict):
        return {k: _cut_strings(v, cap) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_cut_strings(v, cap) for v in value]
    return value


def _drop_last_item(value: Any) -> bool:
    """Drop the last item of the deepest-last list that has more than one; False when none has."""
    if isinstance(value, list) and len(value) > 1:
        value.pop()
        return True
    children = list(value.values()) if isinstance(value, dict) else value if isinstance(value, list) else []
    return any(_drop_last_item(child) for child in reversed(children))


def _put(attributes: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        attributes[key] = value


def _exportable(value: Any) -> Any:
    """The value as every exporter can encode it, or None. JSON from the wire may hold what
    OTLP cannot carry (ints beyond int64, a lone surrogate such as half an emoji cut by a JS
    client); left in, the OTLP encoder drops the attribute with a traceback per span and the
    local store fails the whole batch."""
    if isinstance(value, str):
        if value.isascii():
            return value
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates -> U+FFFD
            return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return value
    if isinstance(value, bool) or not isinstance(value, int | list):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else None
    items = [_exportable(item) for item in value]
    return [item for item in items if item is not None]


def record_attributes(record: GenerationRecord, max_content_bytes: int) -> dict[str, Any]:
    """All attributes of a finished GenAI span."""
    a: dict[str, Any] = {
        gen_ai.GEN_AI_OPERATION_NAME: record.operation,
        gen_ai.GEN_AI_PROVIDER_NAME: record.provider,
        gen_ai.GEN_AI_REQUEST_STREAM: record.stream,
    }
    _put(a, gen_ai.GEN_AI_REQUEST_MODEL, record.request_model)
    for suffix, value in record.request_params.items():
        if value is not None:
            a[_PARAM_PREFIX + suffix] = value
    _put(a, gen_ai.GEN_AI_OUTPUT_TYPE, record.output_type)
    _put(a, gen_ai.GEN_AI_RESPONSE_ID, record.response_id)
    _put(a, gen_ai.GEN_AI_RESPONSE_MODEL, record.response_model)
    if record.finish_reasons:
        a[gen_ai.GEN_AI_RESPONSE_FINISH_REASONS] = list(record.finish_reasons)
    if record.native_finish_reasons:
        a[NATIVE_FINISH_REASONS] = list(record.native_finish_reasons)
    _put(a, gen_ai.GEN_AI_USAGE_INPUT_TOKENS, record.input_tokens)
    _put(a, gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS, record.output_tokens)
    total = record.total_tokens
    if total is None and record.input_tokens is not None and record.output_tokens is not None:
        total = record.input_tokens + record.output_tokens
    _put(a, USAGE_TOTAL_TOKENS, total)
    _put(a, gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, record.cache_read_tokens)
    _put(a, gen_ai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, record.cache_creation_tokens)
    _put(a, gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, record.reasoning_tokens)
    _put(a, gen_ai.GEN_AI_EMBEDDINGS_DIMENSION_COUNT, record.embedding_dimensions)
    if record.cost is not None:
        a[USAGE_COST] = record.cost
        a[USAGE_TOTAL_COST] = record.cost
        _put(a, COST_SOURCE, record.cost_source)
    _put(a, USAGE_INPUT_COST, record.input_cost)
    _put(a, USAGE_OUTPUT_COST, record.output_cost)
    _put(a, IS_BYOK, record.is_byok)
    _put(a, SERVED_BY, record.served_by)
    if record.time_to_first_chunk is not None:
        a[gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = record.time_to_first_chunk
        a[FIRST_TOKEN_MS] = round(record.time_to_first_chunk * 1000)
    if record.stream:
        a[CHUNK_COUNT] = record.chunk_count
    _put(a, USER_ID, record.user)
    if record.session is not None:
        a[SESSION_ID] = record.session
        a[gen_ai.GEN_AI_CONVERSATION_ID] = record.session
    _put(a, TRACE_NAME, record.trace_name)
    for key, value in record.trace_metadata.items():
        a[TRACE_METADATA_PREFIX + key] = value
    _put(a, HTTP_RESPONSE_STATUS_CODE, record.status_code)
    _put(a, error_attributes.ERROR_TYPE, record.error_type)
    if record.capture_content:
        for key, value in (
            (gen_ai.GEN_AI_SYSTEM_INSTRUCTIONS, record.system_instructions),
            (gen_ai.GEN_AI_INPUT_MESSAGES, record.input_messages),
            (gen_ai.GEN_AI_OUTPUT_MESSAGES, record.output_messages),
            (gen_ai.GEN_AI_TOOL_DEFINITIONS, record.tool_definitions),
        ):
            if value:
                a[key] = _capped_json(value, max_content_bytes)
        if record.error_message:
            a[ERROR_MESSAGE] = record.error_message[:max_content_bytes]
    return {_exportable(k): v for k, value in a.items() if (v := _exportable(value)) is not None}


def server_attributes_for(host: str | None, port: int | None) -> dict[str, Any]:
    a: dict[str, Any] = {}
    _put(a, server_attributes.SERVER_ADDRESS, host)
    _put(a, server_attributes.SERVER_PORT, port)
    return a
