"""OpenAI Responses API (``POST /responses``), also served by OpenRouter.

The request has ``instructions`` and ``input`` (a string or a list of items); the response
a list of ``output`` items (messages, function calls, reasoning) and a ``status`` instead of
per-choice finish reasons. Streams are typed events ending in ``response.completed``,
``response.incomplete`` or ``response.failed``; there is no ``[DONE]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from or_middleware.genai.content import (
    DEFAULT_MAX_CONTENT_CHARS,
    CappedText,
    ContentBudget,
    message,
    reasoning_part,
    text_part,
    tool_call_part,
)
from or_middleware.genai.fields import as_dict, as_int, as_list, as_str, get_path, is_model
from or_middleware.genai.openai_chat import content_parts, read_tools
from or_middleware.genai.openai_common import (
    read_error_body,
    read_error_object,
    read_identity,
    read_provider_cost,
    read_sampling_params,
    read_served_by,
)
from or_middleware.genai.record import GenerationRecord, Message
from or_middleware.genai.stream import EventStreamReader

__all__ = ["ResponsesFormat", "ResponsesStreamReader"]

MAX_OUTPUT_ITEMS = 256

_SYSTEM_ROLES = frozenset({"system", "developer"})
_ROUTINE_PREFIXES = (
    "response.output_text.",
    "response.function_call_arguments.",
    "response.reasoning",
    "response.refusal.",
    "response.content_part.",
    "response.output_item.done",
)
_TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
# incomplete_details.reason -> the finish-reason vocabulary shared with Chat Completions.
_INCOMPLETE_REASONS = {"max_output_tokens": "length", "content_filter": "content_filter"}


def finish_reason(response: Mapping[str, Any]) -> str | None:
    """A Chat-Completions-style finish reason for a Responses ``status``."""
    status = as_str(response.get("status"))
    if status == "completed":
        calls = any(
            isinstance(item, Mapping) and item.get("type") == "function_call"
            for item in as_list(response.get("output"))
        )
        return "tool_calls" if calls else "stop"
    if status == "incomplete":
        reason = as_str(get_path(response, "incomplete_details", "reason"))
        return _INCOMPLETE_REASONS.get(reason or "", reason or "incomplete")
    if status == "failed":
        return "error"
    return status  # cancelled, or None while in progress


def read_response_object(response: Mapping[str, Any], record: GenerationRecord) -> None:
    """What a full Response object says (the non-streamed body, or a terminal stream event)."""
    read_served_by(response, record)
    reason = finish_reason(response)
    if reason and reason not in ("in_progress", "queued"):
        record.finish_reasons = [reason]
        native = as_str(get_path(response, "incomplete_details", "reason"))
        if native:
            record.native_finish_reasons = [native]
    read_usage(response.get("usage"), record)
    error = response.get("error")
    if error is not None:
        read_error_object(error, record)


def read_usage(usage: object, record: GenerationRecord) -> None:
    """Responses usage: ``input_tokens`` already include cached ones, as semconv wants."""
    if not isinstance(usage, Mapping):
        return
    for name, value in (
        ("input_tokens", usage.get("input_tokens")),
        ("output_tokens", usage.get("output_tokens")),
        ("total_tokens", usage.get("total_tokens")),
        ("cache_read_tokens", get_path(usage, "input_tokens_details", "cached_tokens")),
        ("cache_creation_tokens", get_path(usage, "input_tokens_details", "cache_write_tokens")),
        ("reasoning_tokens", get_path(usage, "output_tokens_details", "reasoning_tokens")),
    ):
        number = as_int(value)
        if number is not None:
            setattr(record, name, number)
    read_provider_cost(usage, record)  # OpenRouter adds cost to every usage object


def output_parts(items: object) -> list[dict[str, Any]]:
    """The parts of all ``output`` items of a complete response, in order."""
    parts: list[dict[str, Any]] = []
    for item in as_list(items):
        if not isinstance(item, Mapping):
            continue
        kind = item.get("type")
        if kind == "message":
            parts.extend(content_parts(item.get("content")))
        elif kind == "function_call":
            parts.append(tool_call_part(item.get("call_id"), item.get("name"), item.get("arguments")))
        elif kind == "reasoning":
            summary = "".join(s.get("text", "") for s in as_list(item.get("summary")) if isinstance(s, Mapping))
            if summary:
                parts.append(reasoning_part(summary))
        elif isinstance(kind, str):
            parts.append({"type": kind})  # built-in tool calls: web_search_call, ...
    return parts


def read_input(body: Mapping[str, Any], record: GenerationRecord) -> None:
    """``instructions`` and ``input`` into system instructions and semconv input messages."""
    system: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        system.append(text_part(instructions))
    inputs: list[Message] = []
    items = body.get("input")
    if isinstance(items, str):
        inputs.append(message("user", [text_part(items)]))
    for item in as_list(items):
        if not isinstance(item, Mapping):
            continue
        kind = item.get("type")
        role = item.get("role")
        if kind in (None, "message") and isinstance(role, str):
            if role in _SYSTEM_ROLES:
                system.extend(content_parts(item.get("content")))
            else:
                inputs.append(message(role, content_parts(item.get("content"))))
        elif kind == "function_call":
            part = tool_call_part(item.get("call_id"), item.get("name"), item.get("arguments"))
            inputs.append(message("assistant", [part]))
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            part = {
                "type": "tool_call_response",
                "id": call_id if isinstance(call_id, str) else None,
                "response": item.get("output"),
            }
            inputs.append(message("tool", [part]))
        elif kind == "reasoning":
            inputs.append(message("assistant", output_parts([item])))
    if system:
        record.system_instructions = system
    record.input_messages = inputs


class _ItemState:
    __slots__ = ("arguments", "call_id", "kind", "name", "reasoning", "refusal", "text")

    def __init__(self, kind: str, budget: ContentBudget) -> None:
        self.kind = kind
        self.call_id: str | None = None
        self.name: str | None = None
        self.text = CappedText(budget)
        self.reasoning = CappedText(budget)
        self.refusal = CappedText(budget)
        self.arguments = CappedText(budget)

    def parts(self) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        if self.reasoning:
            parts.append(reasoning_part(self.reasoning.value()))
        if self.text:
            parts.append(text_part(self.text.value()))
        if self.refusal:
            parts.append({"type": "refusal", "content": self.refusal.value()})
        if self.kind == "function_call":
            arguments = self.arguments.value() if self.arguments else None
            parts.append(tool_call_part(self.call_id, self.name, arguments))
        return parts


class ResponsesStreamReader(EventStreamReader):
    """Reads the Responses event stream; keeps text per output item only when capturing."""

    end_marker = "response.completed"
    # Named events: deltas, their .done twins and part/item boundaries carry content only.
    routine_events: frozenset[str] = frozenset()
    routine_prefixes = _ROUTINE_PREFIXES

    def __init__(self, record: GenerationRecord, *, max_content_chars: int = DEFAULT_MAX_CONTENT_CHARS) -> None:
        super().__init__(record, max_content_chars=max_content_chars)
        self._items: dict[int, _ItemState] = {}

    def handle(self, event: str | None, payload: Mapping[str, Any], now: float) -> None:
        record = self._record
        record.chunk_count += 1
        kind = as_str(payload.get("type")) or event or ""
        if kind in ("response.created", "response.in_progress", "response.queued"):
            read_response_object(as_dict(payload.get("response")), record)
        elif kind in _TERMINAL_EVENTS:
            read_response_object(as_dict(payload.get("response")), record)
            record.completed = True
        elif kind == "error":
            error = payload.get("error")
            read_error_object(error if isinstance(error, Mapping) else payload, record)
        elif kind == "response.output_item.added":
            item = as_dict(payload.get("item"))
            state = self._item(payload, as_str(item.get("type")) or "message")
            if item.get("type") == "function_call":
                self.first_chunk(now)
                if state is not None:
                    state.call_id = as_str(item.get("call_id"))
                    state.name = as_str(item.get("name"))
        elif kind == "response.output_text.delta":
            self._delta(payload, now, "text")
        elif kind == "response.refusal.delta":
            self._delta(payload, now, "refusal")
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            self._delta(payload, now, "reasoning")
        elif kind == "response.function_call_arguments.delta":
            self._delta(payload, now, "arguments")

    def _item(self, payload: Mapping[str, Any], kind: str) -> _ItemState | None:
        if not self._capture:
            return None
        index = as_int(payload.get("output_index")) or 0
        state = self._items.get(index)
        if state is None and len(self._items) < MAX_OUTPUT_ITEMS:
            state = self._items[index] = _ItemState(kind, self._budget)
        return state

    def _delta(self, payload: Mapping[str, Any], now: float, target: str) -> None:
        delta = payload.get("delta")
        if not isinstance(delta, str) or not delta:
            return
        self.first_chunk(now)
        state = self._item(payload, "function_call" if target == "arguments" else "message")
        if state is not None:
            getattr(state, target).append(delta)

    def write_output(self) -> None:
        record = self._record
        if self._items:
            parts = [part for _, item in sorted(self._items.items()) for part in item.parts()]
            reason = record.finish_reasons[0] if record.finish_reasons else ""
            record.output_messages = [{"role": "assistant", "parts": parts, "finish_reason": reason}]


class ResponsesFormat:
    """``POST /responses``."""

    operation = "chat"

    def claims(self, body: Mapping[str, Any]) -> bool:
        # input may be left out when a stored prompt or a previous response carries it
        return is_model(body) or isinstance(body.get("prompt"), Mapping)

    def read_request(self, body: Mapping[str, Any], record: GenerationRecord) -> None:
        read_identity(body, record)
        read_sampling_params(body, record, max_tokens_keys=("max_output_tokens",))
        kind = get_path(body, "text", "format", "type")
        if kind in ("json_schema", "json_object"):
            record.output_type = "json"
        elif kind == "text":
            record.output_type = "text"
        if record.capture_content:
            read_input(body, record)
            read_tools(body, record)

    def read_response(self, body: Any, record: GenerationRecord) -> None:
        if not isinstance(body, Mapping):
            record.set_error("invalid_response", "response body is not a JSON object")
            return
        read_response_object(body, record)
        if record.capture_content:
            reason = record.finish_reasons[0] if record.finish_reasons else ""
            record.output_messages = [
                {"role": "assistant", "parts": output_parts(body.get("output")), "finish_reason": reason}
            ]
        record.completed = True

    def read_error(self, body: Any, record: GenerationRecord) -> None:
        read_error_body(body, record)

    def stream_reader(
        self, record: GenerationRecord, *, max_content_chars: int = DEFAULT_MAX_CONTENT_CHARS
    ) -> ResponsesStreamReader:
        return ResponsesStreamReader(record, max_content_chars=max_content_chars)
