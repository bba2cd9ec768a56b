"""Anthropic Messages API (``POST /v1/messages``), also served by OpenRouter at ``/messages``.

Anthropic reports ``input_tokens`` WITHOUT the cached ones (``cache_read_input_tokens``,
``cache_creation_input_tokens`` are separate); semconv's ``gen_ai.usage.input_tokens``
counts all input tokens, so the record gets their sum.
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
from or_middleware.genai.fields import as_dict, as_float, as_int, as_list, as_str, get_path, is_model
from or_middleware.genai.openai_common import (
    read_error_body,
    read_error_object,
    read_identity,
    read_provider_cost,
    tool_choice_text,
)
from or_middleware.genai.record import GenerationRecord, Message
from or_middleware.genai.stream import EventStreamReader

__all__ = ["AnthropicMessagesFormat", "AnthropicStreamReader"]

MAX_CONTENT_BLOCKS = 256

_TOOL_USE_BLOCKS = frozenset({"tool_use", "server_tool_use", "mcp_tool_use"})
_ROUTINE_EVENTS = frozenset({"content_block_delta", "content_block_start", "content_block_stop"})


def block_parts(content: object) -> list[dict[str, Any]]:
    """Anthropic content (a string or a list of blocks) as semconv parts."""
    if isinstance(content, str):
        return [text_part(content)] if content else []
    parts: list[dict[str, Any]] = []
    for block in as_list(content):
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        if kind == "text":
            text = block.get("text")
            if isinstance(text, str):
                parts.append(text_part(text))
        elif kind in ("image", "document"):
            parts.append(_source_part("image" if kind == "image" else "document", as_dict(block.get("source"))))
        elif kind in _TOOL_USE_BLOCKS:
            parts.append(tool_call_part(block.get("id"), block.get("name"), block.get("input")))
        elif kind == "tool_result":
            tool_use_id = block.get("tool_use_id")
            response = block.get("content")
            if isinstance(response, list):
                texts = [b.get("text") for b in response if isinstance(b, Mapping) and b.get("type") == "text"]
                response = "".join(t for t in texts if isinstance(t, str)) if len(texts) == len(response) else response
            parts.append(
                {
                    "type": "tool_call_response",
                    "id": tool_use_id if isinstance(tool_use_id, str) else None,
                    "response": response,
                }
            )
        elif kind == "thinking":
            thinking = block.get("thinking")
            if isinstance(thinking, str):
                parts.append(reasoning_part(thinking))
        elif isinstance(kind, str):
            parts.append({"type": kind})  # redacted_thinking, web_search_tool_result, ...
    return parts


def _source_part(modality: str, source: Mapping[str, Any]) -> dict[str, Any]:
    kind = source.get("type")
    if kind == "base64":
        return {
            "type": "blob",
            "modality": modality,
            "mime_type": as_str(source.get("media_type")),
            "content": source.get("data"),
        }
    if kind == "url":
        return {"type": "uri", "modality": modality, "uri": as_str(source.get("url"))}
    if kind == "file":
        return {"type": "file", "modality": modality, "file_id": as_str(source.get("file_id"))}
    if kind == "text":
        return text_part(source.get("data") if isinstance(source.get("data"), str) else "")
    return {"type": modality}


class _Usage:
    """Anthropic usage parts, kept separately so later partial updates recompute the sums."""

    __slots__ = ("cache_creation", "cache_read", "input", "output")

    def __init__(self) -> None:
        self.input: int | None = None
        self.cache_read: int | None = None
        self.cache_creation: int | None = None
        self.output: int | None = None

    def update(self, usage: object, record: GenerationRecord) -> None:
        if not isinstance(usage, Mapping):
            return
        # message_delta carries cumulative counts; a field absent from it keeps its old value.
        for attr, key in (
            ("input", "input_tokens"),
            ("cache_read", "cache_read_input_tokens"),
            ("cache_creation", "cache_creation_input_tokens"),
            ("output", "output_tokens"),
        ):
            number = as_int(usage.get(key))
            if number is not None:
                setattr(self, attr, number)
        known = [n for n in (self.input, self.cache_read, self.cache_creation) if n is not None]
        if known:
            record.input_tokens = sum(known)
        if self.cache_read is not None:
            record.cache_read_tokens = self.cache_read
        if self.cache_creation is not None:
            record.cache_creation_tokens = self.cache_creation
        if self.output is not None:
            record.output_tokens = self.output
        if known and self.output is not None:
            record.total_tokens = sum(known) + self.output
        if as_float(usage.get("cost")) is not None:
            read_provider_cost(usage, record)  # OpenRouter's /messages adds its cost


def read_message_header(msg: Mapping[str, Any], record: GenerationRecord) -> None:
    response_id = as_str(msg.get("id"))
    if response_id and record.response_id is None:
        record.response_id = response_id
    model = as_str(msg.get("model"))
    if model:
        record.response_model = model
    provider = as_str(msg.get("provider"))  # OpenRouter
    if provider:
        record.served_by = provider


class _BlockState:
    __slots__ = ("call_id", "kind", "name", "text")

    def __init__(self, kind: str, budget: ContentBudget) -> None:
        self.kind = kind
        self.call_id: str | None = None
        self.name: str | None = None
        self.text = CappedText(budget)  # text, thinking, or the tool input's JSON

    def part(self) -> dict[str, Any] | None:
        if self.kind in _TOOL_USE_BLOCKS:
            return tool_call_part(self.call_id, self.name, self.text.value() if self.text else None)
        if self.kind == "thinking":
            return reasoning_part(self.text.value())
        if self.kind == "text":
            return text_part(self.text.value())
        return {"type": self.kind}


class AnthropicStreamReader(EventStreamReader):
    """Reads ``message_start`` .. ``message_stop``; keeps block text only when capturing."""

    end_marker = "message_stop"
    # The deltas and block boundaries carry only content (and the first one's timing, taken
    # before skipping starts); message_start/delta/stop, ping and error are read.
    routine_events = _ROUTINE_EVENTS

    def __init__(self, record: GenerationRecord, *, max_content_chars: int = DEFAULT_MAX_CONTENT_CHARS) -> None:
        super().__init__(record, max_content_chars=max_content_chars)
        self._usage = _Usage()
        self._blocks: dict[int, _BlockState] = {}
        self._stop_reason: str | None = None

    def handle(self, event: str | None, payload: Mapping[str, Any], now: float) -> None:
        record = self._record
        kind = as_str(payload.get("type")) or event or ""
        if kind == "ping":
            return  # keep-alive, not a chunk of the answer
        record.chunk_count += 1
        if kind == "message_start":
            msg = as_dict(payload.get("message"))
            read_message_header(msg, record)
            self._usage.update(msg.get("usage"), record)
        elif kind == "content_block_start":
            block = as_dict(payload.get("content_block"))
            block_kind = as_str(block.get("type")) or "text"
            if block_kind in _TOOL_USE_BLOCKS:
                self.first_chunk(now)
            state = self._block(payload, block_kind)
            if state is not None:
                state.call_id = as_str(block.get("id"))
                state.name = as_str(block.get("name"))
                initial = block.get("text") if block_kind == "text" else block.get("thinking")
                if isinstance(initial, str):
                    state.text.append(initial)
            if isinstance(block.get("text"), str) and block["text"]:
                self.first_chunk(now)
        elif kind == "content_block_delta":
            self._on_delta(payload, now)
        elif kind == "message_delta":
            reason = as_str(get_path(payload, "delta", "stop_reason"))
            if reason:
                self._stop_reason = reason
                record.finish_reasons = [reason]
            self._usage.update(payload.get("usage"), record)
        elif kind == "message_stop":
            record.completed = True
        elif kind == "error":
            read_error_object(payload.get("error", payload), record)

    def _block(self, payload: Mapping[str, Any], kind: str) -> _BlockState | None:
        if not self._capture:
            return None
        index = as_int(payload.get("index")) or 0
        state = self._blocks.get(index)
        if state is None and len(self._blocks) < MAX_CONTENT_BLOCKS:
            state = self._blocks[index] = _BlockState(kind, self._budget)
        return state

    def _on_delta(self, payload: Mapping[str, Any], now: float) -> None:
        delta = as_dict(payload.get("delta"))
        kind = delta.get("type")
        if kind == "text_delta":
            piece, block_kind = delta.get("text"), "text"
        elif kind == "thinking_delta":
            piece, block_kind = delta.get("thinking"), "thinking"
        elif kind == "input_json_delta":
            piece, block_kind = delta.get("partial_json"), "tool_use"
        else:
            return  # signature_delta, citations_delta: nothing we record
        if not isinstance(piece, str) or not piece:
            return
        self.first_chunk(now)
        state = self._block(payload, block_kind)
        if state is not None:
            state.text.append(piece)

    def write_output(self) -> None:
        if self._blocks:
            parts = [p for _, block in sorted(self._blocks.items()) if (p := block.part()) is not None]
            self._record.output_messages = [
                {"role": "assistant", "parts": parts, "finish_reason": self._stop_reason or ""}
            ]


class AnthropicMessagesFormat:
    """``POST /v1/messages``."""

    operation = "chat"

    def claims(self, body: Mapping[str, Any]) -> bool:
        return is_model(body) and isinstance(body.get("messages"), list)

    def read_request(self, body: Mapping[str, Any], record: GenerationRecord) -> None:
        read_identity(body, record)  # model, stream; plus OpenRouter's user/session/trace
        user = as_str(get_path(body, "metadata", "user_id"))
        if user and record.user is None:
            record.user = user
        params = record.request_params
        max_tokens = as_int(body.get("max_tokens"))
        if max_tokens is not None:
            params["max_tokens"] = max_tokens
        for key in ("temperature", "top_p"):
            number = as_float(body.get(key))
            if number is not None:
                params[key] = number
        top_k = as_int(body.get("top_k"))
        if top_k is not None:
            params["top_k"] = top_k
        stops = [s for s in as_list(body.get("stop_sequences")) if isinstance(s, str)]
        if stops:
            params["stop_sequences"] = stops
        tool_choice = tool_choice_text(body.get("tool_choice"))
        if tool_choice:
            params["tool_choice"] = tool_choice
        if record.capture_content:
            system = block_parts(body.get("system"))
            if system:
                record.system_instructions = system
            inputs: list[Message] = []
            for msg in as_list(body.get("messages")):
                if isinstance(msg, Mapping):
                    role = msg.get("role")
                    inputs.append(message(role if isinstance(role, str) else "user", block_parts(msg.get("content"))))
            record.input_messages = inputs
            tools = [
                {
                    key: value
                    for key, value in (
                        ("type", as_str(tool.get("type")) or "function"),
                        ("name", tool.get("name")),
                        ("description", tool.get("description")),
                        ("parameters", tool.get("input_schema")),
                    )
                    if value is not None
                }
                for tool in as_list(body.get("tools"))
                if isinstance(tool, Mapping)
            ]
            if tools:
                record.tool_definitions = tools

    def read_response(self, body: Any, record: GenerationRecord) -> None:
        if not isinstance(body, Mapping):
            record.set_error("invalid_response", "response body is not a JSON object")
            return
        if body.get("type") == "error":  # an error shape under a success status
            read_error_object(body.get("error", body), record)
            return
        read_message_header(body, record)
        reason = as_str(body.get("stop_reason"))
        if reason:
            record.finish_reasons = [reason]
        _Usage().update(body.get("usage"), record)
        if record.capture_content:
            record.output_messages = [
                {"role": "assistant", "parts": block_parts(body.get("content")), "finish_reason": reason or ""}
            ]
        record.completed = True

    def read_error(self, body: Any, record: GenerationRecord) -> None:
        # {"type": "error", "error": {"type": "overloaded_error", "message": ...}, "request_id": ...}
        read_error_body(body, record)

    def stream_reader(
        self, record: GenerationRecord, *, max_content_chars: int = DEFAULT_MAX_CONTENT_CHARS
    ) -> AnthropicStreamReader:
        return AnthropicStreamReader(record, max_content_chars=max_content_chars)
