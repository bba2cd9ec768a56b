"""PostHogEvents: spans as PostHog LLM-analytics events for the batch capture API (``POST /batch/``).

A GenAI span becomes a ``$ai_generation`` event (``$ai_embedding`` for embeddings), any other
span (``SPANS=all``) a ``$ai_span`` event, all carrying ``$ai_trace_id`` / ``$ai_span_id`` /
``$ai_parent_id`` so PostHog draws the same tree. ``distinct_id`` is the user; without one the
event is anonymous (``$process_person_profile: false``) under the trace id. Content
(``$ai_input``, ``$ai_output_choices``, ``$ai_tools``, the error message) is included only when
the span still carries it, i.e. for a destination with privacy mode off. Each event's ``uuid``
is derived from its span id, so a batch delivered twice (a retry after a lost answer) counts once.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes import error_attributes, server_attributes
from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE
from opentelemetry.trace import StatusCode

from or_middleware import spans as contract
from or_middleware.export.draft import is_genai_span
from or_middleware.export.messages import input_chat_messages, load_json, output_chat_messages
from or_middleware.export.transports import SendResult, Transport
from or_middleware.version import __version__

_EVENT_NAMESPACE = uuid.UUID("5d1f1c4e-6a43-4c55-9a0c-2b4f0f3f8a11")

# span attribute -> event property, copied when present
_PROPERTIES: tuple[tuple[str, str], ...] = (
    (gen_ai.GEN_AI_PROVIDER_NAME, "$ai_provider"),
    (gen_ai.GEN_AI_USAGE_INPUT_TOKENS, "$ai_input_tokens"),
    (gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS, "$ai_output_tokens"),
    (gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, "$ai_cache_read_input_tokens"),
    (gen_ai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, "$ai_cache_creation_input_tokens"),
    (gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, "$ai_reasoning_tokens"),
    (contract.USAGE_INPUT_COST, "$ai_input_cost_usd"),
    (contract.USAGE_OUTPUT_COST, "$ai_output_cost_usd"),
    (contract.USAGE_COST, "$ai_total_cost_usd"),
    (gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, "$ai_time_to_first_token"),
    (gen_ai.GEN_AI_REQUEST_STREAM, "$ai_stream"),
    (gen_ai.GEN_AI_REQUEST_TEMPERATURE, "$ai_temperature"),
    (gen_ai.GEN_AI_REQUEST_MAX_TOKENS, "$ai_max_tokens"),
    (HTTP_RESPONSE_STATUS_CODE, "$ai_http_status"),
    (contract.SESSION_ID, "$ai_session_id"),
    (contract.SERVED_BY, "$ai_served_by"),
    (gen_ai.GEN_AI_RESPONSE_ID, "$ai_response_id"),
    (gen_ai.GEN_AI_RESPONSE_FINISH_REASONS, "$ai_stop_reason"),
)


def _iso(ns: int | None) -> str:
    return dt.datetime.fromtimestamp((ns or 0) / 1e9, tz=dt.UTC).isoformat()


def _event_name(span: ReadableSpan, attributes: Mapping[str, Any]) -> str:
    if not is_genai_span(span):
        return "$ai_span"
    return "$ai_embedding" if attributes.get(gen_ai.GEN_AI_OPERATION_NAME) == "embeddings" else "$ai_generation"


def span_event(span: ReadableSpan) -> dict[str, Any]:
    a = span.attributes or {}
    trace_id = f"{span.context.trace_id:032x}"
    span_id = f"{span.context.span_id:016x}"
    is_error = span.status.status_code is StatusCode.ERROR or a.get(error_attributes.ERROR_TYPE) is not None
    props: dict[str, Any] = {
        "$ai_trace_id": trace_id,
        "$ai_span_id": span_id,
        "$ai_span_name": span.name,
        "$ai_latency": ((span.end_time or 0) - (span.start_time or 0)) / 1e9,
        "$ai_is_error": is_error,
        "$lib": "or-middleware",
        "$lib_version": __version__,
    }
    if span.parent is not None:
        props["$ai_parent_id"] = f"{span.parent.span_id:016x}"
    model = a.get(gen_ai.GEN_AI_RESPONSE_MODEL) or a.get(gen_ai.GEN_AI_REQUEST_MODEL)
    if model:
        props["$ai_model"] = model
    for key, prop in _PROPERTIES:
        value = a.get(key)
        if value is not None:
            props[prop] = list(value) if isinstance(value, tuple) else value
    host = a.get(server_attributes.SERVER_ADDRESS)
    if host:
        props["$ai_base_url"] = f"{host}:{a.get(server_attributes.SERVER_PORT)}" if a.get(
            server_attributes.SERVER_PORT) else str(host)
    if is_error:
        message = a.get(contract.ERROR_MESSAGE)  # content: present only with privacy mode off
        props["$ai_error"] = str(message or a.get(error_attributes.ERROR_TYPE) or span.status.description or "error")
    inputs = input_chat_messages(a)
    if inputs is not None:
        props["$ai_input"] = inputs
    outputs = output_chat_messages(a)
    if outputs is not None:
        props["$ai_output_choices"] = outputs
    tools = load_json(a.get(gen_ai.GEN_AI_TOOL_DEFINITIONS))
    if tools is not None:
        props["$ai_tools"] = tools
    for key, value in a.items():
        if key.startswith(contract.TRACE_METADATA_PREFIX):
            props.setdefault(key.removeprefix(contract.TRACE_METADATA_PREFIX), value)
    user = a.get(contract.USER_ID)
    if not user:
        props["$process_person_profile"] = False
    return {
        "event": _event_name(span, a),
        "distinct_id": str(user or trace_id),
        "properties": props,
        "timestamp": _iso(span.start_time),
        "uuid": str(uuid.uuid5(_EVENT_NAMESPACE, f"{trace_id}-{span_id}")),
    }


class PostHogEvents:
    """The ``/batch/`` request body without the key: ``{"historical_migration": false, "batch": [...]}``.
    The encoded bytes are what is spooled to disk, so the API key is added only at send time
    (:class:`PostHogKeyTransport`)."""

    content_type = "application/json"

    def encode(self, spans: Sequence[ReadableSpan]) -> bytes:
        body = {"historical_migration": False, "batch": [span_event(span) for span in spans]}
        return json.dumps(body, ensure_ascii=False, default=str).encode()


class PostHogKeyTransport:
    """Puts ``"api_key"`` first in each body on its way out (PostHog's capture API reads it from the
    body); the bytes kept in memory and in the spool never hold it."""

    def __init__(self, inner: Transport, api_key: str) -> None:
        self.inner = inner
        self.target = inner.target
        self._prefix = b'{"api_key":' + json.dumps(api_key).encode() + b","

    def send(self, body: bytes) -> SendResult:
        if not body.startswith(b"{"):  # not ours (a spool file from elsewhere): sent as it is
            return self.inner.send(body)
        return self.inner.send(self._prefix + body[1:])

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)
