"""Cohere v2: ``POST /v2/chat`` (JSON, or an SSE event stream) and ``POST /v2/embed``.

https://docs.cohere.com/reference/chat and https://docs.cohere.com/reference/chat-stream.
Stream events (``type`` in each data object, also the SSE ``event:`` name): ``message-start``
(the id), ``content-start``/``content-delta``/``content-end``, ``tool-plan-delta``,
``tool-call-start``/``-delta``/``-end``, ``citation-start``/``-end``, and ``message-end``
with ``delta.finish_reason`` and ``delta.usage``.

Tokens: usage has ``tokens`` (what the model read and wrote) and ``billed_units`` (what is
charged, which leaves out the prompt template Cohere adds). We record ``tokens``, because
semconv's token counts are the model's, and fall back to ``billed_units`` when a response
has only those (``/v2/embed`` reports billed units alone).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from or_middleware.genai.content import DEFAULT_MAX_CONTENT_CHARS, CappedText, text_part, tool_call_part
from or_middleware.genai.fields import as_dict, as_float, as_int, as_list, as_str, get_path, is_model
from or_middleware.genai.openai_chat import read_tools
from or_middleware.genai.openai_common import read_error_body
from or_middleware.genai.params import ParamTable, read_params, response_object, set_tokens
from or_middleware.genai.record import GenerationRecord, Message
from or_middleware.genai.stream import EventStreamReader

__all__ = ["COHERE_CHAT", "COHERE_EMBED", "CohereFormat"]

_PARAMS: ParamTable = (
    ("max_tokens", "max_tokens", as_int),
    ("temperature", "temperature", as_float),
    ("p", "top_p", as_float),
    ("k", "top_k", as_int),
    ("seed", "seed", as_int),
    ("frequency_penalty", "frequency_penalty", as_float),
    ("presence_penalty", "presence_penalty", as_float),
)
_ROUTINE = frozenset({"content-delta", "content-start", "content-end", "tool-plan-delta", "tool-call-delta",
                      "tool-call-end", "citation-start", "citation-end"})
MAX_TOOL_CALLS = 128


def read_usage(usage: object, record: GenerationRecord) -> None:
    usage = as_dict(usage)
    counts = as_dict(usage.get("tokens")) or as_dict(usage.get("billed_units"))
    set_tokens(record, counts.get("input_tokens"), counts.get("output_tokens"))
    cached = as_int(usage.get("cached_tokens"))
    if cached is not None:
        record.cache_read_tokens = cached


def _finish(reason: str | None, record: GenerationRecord) -> None:
    if reason:
        record.finish_reasons = [reason]
        if reason == "ERROR":  # a generation that failed after it started
            record.set_error("error", "finish_reason ERROR")


def _content_parts(content: object) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [text_part(content)] if content else []
    parts: list[dict[str, Any]] = []
    for item in as_list(content):
        item = as_dict(item)
        if isinstance(item.get("text"), str):
            parts.append(text_part(item["text"]))
        elif isinstance(item.get("type"), str):
            parts.append({"type": item["type"]})  # image_url, document, thinking ...
    return parts


def _calls(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for call in as_list(message.get("tool_calls")):
        function = as_dict(as_dict(call).get("function"))
        out.append(tool_call_part(as_dict(call).get("id"), function.get("name"), function.get("arguments")))
    return out


def _read_messages(messages: object, record: GenerationRecord) -> None:
    system: list[dict[str, Any]] = []
    inputs: list[Message] = []
    for msg in as_list(messages):
        if not isinstance(msg, Mapping):
            continue
        role = as_str(msg.get("role")) or "user"
        if role == "system":
            system.extend(_content_parts(msg.get("content")))
        elif role == "tool":
            response: Any = msg.get("content")
            if isinstance(response, list):
                response = "".join(as_str(as_dict(p).get("text")) or "" for p in response)
            inputs.append({"role": "tool", "parts": [
                {"type": "tool_call_response", "id": as_str(msg.get("tool_call_id")), "response": response}]})
        else:
            inputs.append({"role": role, "parts": _content_parts(msg.get("content")) + _calls(msg)})
    if system:
        record.system_instructions = system
    record.input_messages = inputs


class CohereStreamReader(EventStreamReader):
    end_marker = "message-end"
    routine_events = _ROUTINE

    def __init__(self, record: GenerationRecord, *, max_content_chars: int = DEFAULT_MAX_CONTENT_CHARS) -> None:
        super().__init__(record, max_content_chars=max_content_chars)
        self._text = CappedText(self._budget)
        self._calls: dict[int, list[Any]] = {}  # index -> [id, name, CappedText arguments]

    def handle(self, event: str | None, payload: Mapping[str, Any], now: float) -> None:
        record = self._record
        kind = as_str(payload.get("type")) or event or ""
        record.chunk_count += 1
        delta = as_dict(payload.get("delta"))
        message = as_dict(delta.get("message"))
        if kind == "message-start":
            response_id = as_str(payload.get("id"))
            if response_id and record.response_id is None:
                record.response_id = response_id
        elif kind == "content-delta":
            text = get_path(message, "content", "text")
            if isinstance(text, str) and text:
                self.first_chunk(now)
                if self._capture:
                    self._text.append(text)
        elif kind in ("tool-call-start", "tool-call-delta", "tool-plan-delta"):
            self.first_chunk(now)
            if self._capture and kind != "tool-plan-delta":
                self._tool_call(as_int(payload.get("index")) or 0, as_dict(message.get("tool_calls")))
        elif kind == "message-end":
            if delta.get("error"):
                record.set_error("error", as_str(delta.get("error")))
            _finish(as_str(delta.get("finish_reason")), record)
            read_usage(delta.get("usage"), record)
            record.completed = True
        error = payload if kind == "error" else payload.get("error")
        if error:
            text = error if isinstance(error, str) else as_str(as_dict(error).get("message"))
            record.set_error("error", text)

    def _tool_call(self, index: int, call: Mapping[str, Any]) -> None:
        state = self._calls.get(index)
        if state is None:
            if len(self._calls) >= MAX_TOOL_CALLS:
                return
            state = self._calls[index] = [None, None, CappedText(self._budget)]
        function = as_dict(call.get("function"))
        state[0] = as_str(call.get("id")) or state[0]
        state[1] = as_str(function.get("name")) or state[1]
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            state[2].append(arguments)

    def write_output(self) -> None:
        parts = [text_part(self._text.value())] if self._text else []
        for _, (call_id, name, arguments) in sorted(self._calls.items()):
            parts.append(tool_call_part(call_id, name, arguments.value() if arguments else None))
        reason = self._record.finish_reasons[0] if self._record.finish_reasons else ""
        self._record.output_messages = [{"role": "assistant", "parts": parts, "finish_reason": reason}]


class CohereFormat:
    native_provider = "cohere"

    def __init__(self, operation: str) -> None:
        self.operation = operation  # chat | embeddings

    def claims(self, body: Mapping[str, Any]) -> bool:
        if not is_model(body):
            return False
        if self.operation == "chat":
            return isinstance(body.get("messages"), list)
        return any(isinstance(body.get(key), list) for key in ("texts", "inputs", "images"))

    def read_request(self, body: Mapping[str, Any], record: GenerationRecord) -> None:
        record.request_model = as_str(body.get("model"))
        record.stream = self.operation == "chat" and body.get("stream") is True
        read_params(_PARAMS, body, record, stops="stop_sequences")
        dims = as_int(body.get("output_dimension"))
        if dims is not None:
            record.embedding_dimensions = dims
        kind = get_path(body, "response_format", "type")
        if kind in ("json_object", "text"):
            record.output_type = "json" if kind == "json_object" else "text"
        if record.capture_content and self.operation == "chat":
            _read_messages(body.get("messages"), record)
            read_tools(body, record)

    def read_response(self, body: Any, record: GenerationRecord) -> None:
        body = response_object(body, record)
        if body is None:
            return
        response_id = as_str(body.get("id"))
        if response_id:
            record.response_id = response_id
        record.completed = True
        if self.operation == "embeddings":
            meta = as_dict(body.get("meta"))
            read_usage({"tokens": meta.get("tokens"), "billed_units": meta.get("billed_units")}, record)
            embeddings = body.get("embeddings")
            vectors = as_list(embeddings) or next(
                (v for v in as_dict(embeddings).values() if isinstance(v, list) and v), []
            )
            if vectors and isinstance(vectors[0], list):
                record.embedding_dimensions = len(vectors[0])
            return
        _finish(as_str(body.get("finish_reason")), record)
        read_usage(body.get("usage"), record)
        if record.capture_content:
            message = as_dict(body.get("message"))
            parts = _content_parts(message.get("content")) + _calls(message)
            record.output_messages = [
                {"role": "assistant", "parts": parts, "finish_reason": as_str(body.get("finish_reason")) or ""}
            ]

    def read_error(self, body: Any, record: GenerationRecord) -> None:
        read_error_body(body, record)  # {"id": ..., "message": "..."}

    def stream_reader(
        self, record: GenerationRecord, *, max_content_chars: int = DEFAULT_MAX_CONTENT_CHARS
    ) -> CohereStreamReader:
        return CohereStreamReader(record, max_content_chars=max_content_chars)


COHERE_CHAT = CohereFormat("chat")
COHERE_EMBED = CohereFormat("embeddings")
