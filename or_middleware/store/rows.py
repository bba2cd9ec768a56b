"""A finished GenAI span as the store's rows: one ``generations`` row, one ``security_events`` row per signal.

The same tuples go to SQLite and PostgreSQL (and, as JSON, to the spool while PostgreSQL is down).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes import error_attributes
from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE
from opentelemetry.trace import StatusCode

from or_middleware import spans as contract
from or_middleware.export.privacy import ORIGINAL_PARENT
from or_middleware.security.events import EVENT_PREFIX, evidence_of
from or_middleware.store.schema import GENERATION_COLUMNS

# trace.metadata.* keys that are ours, already in their own columns, not the app's metadata
_NOT_METADATA = frozenset({contract.SERVED_BY, contract.FIRST_TOKEN_MS})


def is_genai(span: ReadableSpan) -> bool:
    return bool(span.instrumentation_scope and span.instrumentation_scope.name == contract.GENAI_SCOPE)


def _hex_span_id(span_id: int) -> str:
    return f"{span_id:016x}"


def _joined(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return ",".join(str(item) for item in value)


_INT64 = range(-(2**63), 2**63)


def _int(value: Any) -> int | None:
    """An integer column's value; None for anything else and for what a 64-bit column cannot hold."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value in _INT64 else None


# User and session ids and model names are indexed: PostgreSQL refuses an index entry over ~2.7 kB,
# and none needs more than this (OpenRouter takes 128 and 256 characters for user and session).
# Both engines store the same.
ID_MAX_CHARS = 512


def _id(value: Any) -> Any:
    return value[:ID_MAX_CHARS] if isinstance(value, str) else value


def storable(value: Any) -> Any:
    """``value`` as both engines store it: text without NUL characters (PostgreSQL's text cannot
    hold them) or lone surrogates (not UTF-8: no driver can send them), each replaced by U+FFFD.
    A client controls these strings; one bad character must not cost the batch its other rows."""
    if not isinstance(value, str) or (value.isascii() and "\x00" not in value):
        return value
    try:
        value.encode()
    except UnicodeEncodeError:
        value = "".join("\ufffd" if "\ud800" <= char <= "\udfff" else char for char in value)
    return value.replace("\x00", "\ufffd")


def _float(value: Any) -> float | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        return float(value)
    except OverflowError:  # an integer beyond any float
        return None


def _metadata(attributes: Mapping[str, Any]) -> str | None:
    prefix = contract.TRACE_METADATA_PREFIX
    custom = {
        key[len(prefix):]: value
        for key, value in attributes.items()
        if key.startswith(prefix) and key not in _NOT_METADATA
    }
    return json.dumps(custom, ensure_ascii=False, sort_keys=True) if custom else None


def generation_row(span: ReadableSpan) -> tuple[Any, ...]:
    a = span.attributes or {}
    start, end = span.start_time or 0, span.end_time or span.start_time or 0
    failed = span.status.status_code is StatusCode.ERROR or a.get(error_attributes.ERROR_TYPE) is not None
    values: dict[str, Any] = {
        "time_unix_nano": start,
        "trace_id": f"{span.context.trace_id:032x}",
        "span_id": _hex_span_id(span.context.span_id),
        # SPANS=genai destinations get GenAI spans detached from their (unsent) server span; keep its id.
        "parent_span_id": _hex_span_id(span.parent.span_id) if span.parent else a.get(ORIGINAL_PARENT),
        "service": span.resource.attributes.get("service.name") if span.resource else None,
        "route": a.get(contract.TRACE_NAME),
        "operation": a.get(gen_ai.GEN_AI_OPERATION_NAME),
        "user_id": _id(a.get(contract.USER_ID)),
        "session_id": _id(a.get(contract.SESSION_ID)),
        "request_model": _id(a.get(gen_ai.GEN_AI_REQUEST_MODEL)),
        "response_model": _id(a.get(gen_ai.GEN_AI_RESPONSE_MODEL)),
        "provider": a.get(gen_ai.GEN_AI_PROVIDER_NAME),
        "upstream_provider": a.get(contract.SERVED_BY),
        "input_tokens": _int(a.get(gen_ai.GEN_AI_USAGE_INPUT_TOKENS)),
        "output_tokens": _int(a.get(gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS)),
        "cached_tokens": _int(a.get(gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)),
        "cache_creation_tokens": _int(a.get(gen_ai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS)),
        "reasoning_tokens": _int(a.get(gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS)),
        "total_tokens": _int(a.get(contract.USAGE_TOTAL_TOKENS)),
        "cost_usd": _float(a.get(contract.USAGE_COST)),
        "cost_source": a.get(contract.COST_SOURCE),
        "duration_s": max(0, end - start) / 1e9,
        "ttfc_s": _float(a.get(gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)),
        "stream": 1 if a.get(gen_ai.GEN_AI_REQUEST_STREAM) else 0,
        "status": "error" if failed else "ok",
        "error_type": a.get(error_attributes.ERROR_TYPE),
        "http_status": _int(a.get(HTTP_RESPONSE_STATUS_CODE)),
        "finish_reason": _joined(a.get(gen_ai.GEN_AI_RESPONSE_FINISH_REASONS)),
        "response_id": a.get(gen_ai.GEN_AI_RESPONSE_ID),
        "prompt_sha256": a.get(contract.PROMPT_SHA256),
        "metadata": _metadata(a),
        # Content reaches this exporter only when this destination's privacy mode is off.
        "system_instructions": a.get(gen_ai.GEN_AI_SYSTEM_INSTRUCTIONS),
        "input_messages": a.get(gen_ai.GEN_AI_INPUT_MESSAGES),
        "output_messages": a.get(gen_ai.GEN_AI_OUTPUT_MESSAGES),
        "tool_definitions": a.get(gen_ai.GEN_AI_TOOL_DEFINITIONS),
        "error_message": a.get(contract.ERROR_MESSAGE),
    }
    return tuple(storable(values[column]) for column in GENERATION_COLUMNS)


def security_rows(span: ReadableSpan) -> list[tuple[Any, ...]]:
    a = span.attributes or {}
    rows = []
    for event in span.events:
        if not event.name.startswith(EVENT_PREFIX):
            continue
        evidence = evidence_of(dict(event.attributes or {}))
        rows.append(tuple(storable(value) for value in (
            event.timestamp or span.end_time or 0,
            f"{span.context.trace_id:032x}",
            _hex_span_id(span.context.span_id),
            event.name[len(EVENT_PREFIX):],
            _id(a.get(contract.USER_ID)),
            a.get(contract.TRACE_NAME),
            _id(a.get(gen_ai.GEN_AI_REQUEST_MODEL)),
            json.dumps(evidence, ensure_ascii=False, sort_keys=True, default=list),
        )))
    return rows
