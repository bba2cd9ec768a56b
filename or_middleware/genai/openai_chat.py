"""OpenAI Chat Completions (``/chat/completions``) and legacy Completions (``/completions``).

Both are also what OpenRouter and most OpenAI-compatible servers speak; OpenRouter's extras
(``provider``, ``native_finish_reason``, ``usage.cost``, mid-stream ``error`` chunks) are
read here too.
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
from or_middleware.genai.openai_common import (
    finish_reasons,
    read_error_body,
    read_error_object,
    read_identity,
    read_sampling_params,
    read_served_by,
    read_usage,
)
from or_middleware.genai.record import GenerationRecord, Message
from or_middleware.genai.stream import EventStreamReader

__all__ = ["ChatCompletionsFormat", "ChatStreamReader", "TextCompletionsFormat"]

# Bounds on per-stream bookkeeping, so a hostile stream cannot open unlimited choices or calls.
MAX_CHOICES = 128
MAX_TOOL_CALLS_PER_CHOICE = 128

_SYSTEM_ROLES = frozenset({"system", "developer"})


# --- request / response content in semconv shape -----------------------------------------


def content_parts(content: object) -> list[dict[str, Any]]:
    """A message's ``content`` (string or list of typed parts) as semconv parts."""
    if isinstance(content, str):
        return [text_part(content)] if content else []
    parts: list[dict[str, Any]] = []
    for item in as_list(content):
        if not isinstance(item, Mapping):
            continue
        kind = item.get("type")
        if kind in ("text", "input_text", "output_text"):
            text = item.get("text")
            if isinstance(text, str):
                parts.append(text_part(text))
        elif kind == "refusal":
            refusal = item.get("refusal")
            if isinstance(refusal, str):
                parts.append({"type": "refusal", "content": refusal})
        elif kind == "image_url":
            url = get_path(item, "image_url", "url")
            if not isinstance(url, str):
                url = item.get("image_url")
            parts.append(media_part("image", url))
        elif kind == "input_image":  # Responses API: a URL (or data: URL) or an uploaded file
            if isinstance(item.get("file_id"), str):
                parts.append({"type": "file", "modality": "image", "file_id": item["file_id"]})
            else:
                parts.append(media_part("image", item.get("image_url")))
        elif kind == "input_file":
            if isinstance(item.get("file_id"), str):
                parts.append({"type": "file", "file_id": item["file_id"]})
            elif isinstance(item.get("file_url"), str):
                parts.append(media_part("document", item["file_url"]))
            else:
                parts.append(media_part("document", item.get("file_data")))
        elif kind == "input_audio":
            audio = as_dict(item.get("input_audio"))
            fmt = as_str(audio.get("format"))
            parts.append(
                {
                    "type": "blob",
                    "modality": "audio",
                    "mime_type": f"audio/{fmt}" if fmt else None,
                    "content": audio.get("data"),
                }
            )
        elif kind == "file":
            file = as_dict(item.get("file"))
            if isinstance(file.get("file_id"), str):
                parts.append({"type": "file", "file_id": file["file_id"]})
            else:
                parts.append(media_part("document", file.get("file_data")))
        elif isinstance(kind, str):
            parts.append({"type": kind})
    return parts


def media_part(modality: str, url: object) -> dict[str, Any]:
    """An image/audio/file reference: a ``uri`` part, or a ``blob`` part for a data: URL."""
    if isinstance(url, str) and url.startswith("data:"):
        header, _, data = url.partition(",")
        mime_type = header[5:].split(";", 1)[0] or None
        return {"type": "blob", "modality": modality, "mime_type": mime_type, "content": data}
    return {"type": "uri", "modality": modality, "uri": url if isinstance(url, str) else None}


def _joined_text(content: object) -> object:
    """A tool result's content: a string, or the text of its parts joined."""
    if isinstance(content, list):
        texts = [p.get("text") for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str)]
        return "".join(texts) if len(texts) == len(content) else content
    return content


def assistant_parts(msg: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Reasoning, text, refusal and tool calls of an assistant message (request or response)."""
    parts: list[dict[str, Any]] = []
    reasoning = msg.get("reasoning")
    if not isinstance(reasoning, str):
        reasoning = msg.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        parts.append(reasoning_part(reasoning))
    parts.extend(content_parts(msg.get("content")))
    refusal = msg.get("refusal")
    if isinstance(refusal, str) and refusal:
        parts.append({"type": "refusal", "content": refusal})
    for call in as_list(msg.get("tool_calls")):
        if isinstance(call, Mapping):
            function = as_dict(call.get("function"))
            parts.append(tool_call_part(call.get("id"), function.get("name"), function.get("arguments")))
    function_call = msg.get("function_call")  # the pre-tools API, still accepted
    if isinstance(function_call, Mapping):
        parts.append(tool_call_part(None, function_call.get("name"), function_call.get("arguments")))
    return parts


def read_messages(messages: object, record: GenerationRecord) -> None:
    """Chat messages into ``system_instructions`` and ``input_messages``."""
    system: list[dict[str, Any]] = []
    inputs: list[Message] = []
    for msg in as_list(messages):
        if not isinstance(msg, Mapping):
            continue
        role = msg.get("role")
        role = role if isinstance(role, str) else "user"
        if role in _SYSTEM_ROLES:
            system.extend(content_parts(msg.get("content")))
            continue
        if role == "assistant":
            parts = assistant_parts(msg)
        elif role in ("tool", "function"):
            call_id = msg.get("tool_call_id")
            parts = [
                {
                    "type": "tool_call_response",
                    "id": call_id if isinstance(call_id, str) else None,
                    "response": _joined_text(msg.get("content")),
                }
            ]
        else:
            parts = content_parts(msg.get("content"))
        inputs.append(message(role, parts, name=as_str(msg.get("name"))))
    if system:
        record.system_instructions = system
    record.input_messages = inputs


def read_tools(body: Mapping[str, Any], record: GenerationRecord) -> None:
    """``tools`` (and legacy ``functions``) as semconv tool definitions."""
    definitions: list[dict[str, Any]] = []
    for tool in as_list(body.get("tools")):
        if not isinstance(tool, Mapping):
            continue
        kind = as_str(tool.get("type")) or "function"
        spec = as_dict(tool.get(kind)) if isinstance(tool.get(kind), Mapping) else tool
        definitions.append(_tool_definition(kind, spec))
    for function in as_list(body.get("functions")):
        if isinstance(function, Mapping):
            definitions.append(_tool_definition("function", function))
    if definitions:
        record.tool_definitions = definitions


def _tool_definition(kind: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    definition: dict[str, Any] = {"type": kind}
    for key in ("name", "description", "parameters"):
        if spec.get(key) is not None:
            definition[key] = spec[key]
    return definition


def read_output_type(body: Mapping[str, Any], record: GenerationRecord) -> None:
    """``response_format`` as semconv ``gen_ai.output.type`` (json | text)."""
    kind = get_path(body, "response_format", "type")
    if kind in ("json_object", "json_schema"):
        record.output_type = "json"
    elif kind == "text":
        record.output_type = "text"


# --- stream -------------------------------------------------------------------------------


class _ToolCallState:
    __slots__ = ("arguments", "call_id", "name")

    def __init__(self, budget: ContentBudget) -> None:
        self.call_id: str | None = None
        self.name: str | None = None
        self.arguments = CappedText(budget)


class _ChoiceState:
    __slots__ = ("finish_reason", "native_finish_reason", "reasoning", "refusal", "text", "tool_calls")

    def __init__(self, budget: ContentBudget) -> None:
        self.finish_reason: str | None = None
        self.native_finish_reason: str | None = None
        self.text = CappedText(budget)
        self.reasoning = CappedText(budget)
        self.refusal = CappedText(budget)
        self.tool_calls: dict[int, _ToolCallState] = {}

    def output_message(self) -> Message:
        parts: list[dict[str, Any]] = []
        if self.reasoning:
            parts.append(reasoning_part(self.reasoning.value()))
        if self.text:
            parts.append(text_part(self.text.value()))
        if self.refusal:
            parts.append({"type": "refusal", "content": self.refusal.value()})
        for _, call in sorted(self.tool_calls.items()):
            # Cut-off arguments end in the truncation marker, fail to parse and stay a string.
            arguments = call.arguments.value() if call.arguments else None
            parts.append(tool_call_part(call.call_id, call.name, arguments))
        return {"role": "assistant", "parts": parts, "finish_reason": self.finish_reason or ""}


class ChatStreamReader(EventStreamReader):
    """Reads a Chat Completions (or legacy Completions) SSE stream into a record.

    Keeps per choice only its finish reason and, when content is captured, the text,
    reasoning, refusal and tool calls reassembled so far (within one shared character budget).
    """

    end_marker = "data: [DONE]"
    fact_keys = ('finish_reason"', '"usage"', '"error"')  # also native_finish_reason, x_groq.usage

    def __init__(
        self,
        record: GenerationRecord,
        *,
        text_completion: bool = False,
        max_content_chars: int = DEFAULT_MAX_CONTENT_CHARS,
    ) -> None:
        super().__init__(record, max_content_chars=max_content_chars)
        self._text_completion = text_completion
        self._choices: dict[int, _ChoiceState] = {}

    def is_routine(self, event: str | None, data: str) -> bool:
        return event != "error" and super().is_routine(event, data)

    def handle_other(self, event: str | None, data: str, now: float) -> None:
        if data.strip() == "[DONE]":
            self._record.completed = True

    def handle(self, event: str | None, chunk: Mapping[str, Any], now: float) -> None:
        record = self._record
        record.chunk_count += 1
        if event == "error" and "error" not in chunk:  # some compatible servers name the event
            read_error_object(chunk, record)
        read_served_by(chunk, record)
        usage = chunk.get("usage")
        if isinstance(usage, Mapping):
            read_usage(usage, record)
        groq_usage = get_path(chunk, "x_groq", "usage")  # Groq: stream usage on the last chunk
        if isinstance(groq_usage, Mapping):
            read_usage(groq_usage, record)
        for choice in as_list(chunk.get("choices")):
            if isinstance(choice, Mapping):
                self._on_choice(choice, now)
        # OpenRouter: an error after streaming started keeps HTTP 200 and arrives as a chunk
        # with a top-level `error` (and finish_reason "error"); OpenAI sends a bare error chunk.
        error = chunk.get("error")
        if error is not None:
            read_error_object(error, record)

    def _on_choice(self, choice: Mapping[str, Any], now: float) -> None:
        index = as_int(choice.get("index")) or 0
        state = self._choices.get(index)
        if state is None:
            if len(self._choices) >= MAX_CHOICES:
                return
            state = self._choices[index] = _ChoiceState(self._budget)
        if self._text_completion:
            self._on_text(choice.get("text"), state.text, now)
        else:
            delta = as_dict(choice.get("delta"))
            self._on_text(delta.get("content"), state.text, now)
            reasoning = delta.get("reasoning")
            if not isinstance(reasoning, str):
                reasoning = delta.get("reasoning_content")
            self._on_text(reasoning, state.reasoning, now)
            self._on_text(delta.get("refusal"), state.refusal, now)
            calls = delta.get("tool_calls")
            if isinstance(calls, list) and calls:
                self.first_chunk(now)
                if self._capture:
                    for call in calls:
                        if isinstance(call, Mapping):
                            self._on_tool_call(state, call)
            function_call = delta.get("function_call")
            if isinstance(function_call, Mapping) and function_call:
                self.first_chunk(now)
                if self._capture:
                    self._on_tool_call(state, {"index": -1, "function": function_call})
        changed = False
        reason = as_str(choice.get("finish_reason"))
        if reason and reason != state.finish_reason:
            state.finish_reason = reason
            changed = True
        native = as_str(choice.get("native_finish_reason"))
        if native and native != state.native_finish_reason:
            state.native_finish_reason = native
            changed = True
        if changed:
            ordered = sorted(self._choices.items())
            self._record.finish_reasons = [s.finish_reason for _, s in ordered if s.finish_reason]
            self._record.native_finish_reasons = [s.native_finish_reason for _, s in ordered if s.native_finish_reason]

    def _on_text(self, piece: object, target: CappedText, now: float) -> None:
        if isinstance(piece, str) and piece:
            self.first_chunk(now)
            if self._capture:
                target.append(piece)

    def _on_tool_call(self, state: _ChoiceState, call: Mapping[str, Any]) -> None:
        calls = state.tool_calls
        call_id = as_str(call.get("id"))
        index = as_int(call.get("index"))
        if index is None:
            # Some OpenAI-compatible servers omit `index`: match by id, else it is a new call.
            index = next((i for i, c in calls.items() if call_id and c.call_id == call_id), len(calls))
        tool = calls.get(index)
        if tool is None:
            if len(calls) >= MAX_TOOL_CALLS_PER_CHOICE:
                return
            tool = calls[index] = _ToolCallState(self._budget)
        if call_id:
            tool.call_id = call_id
        function = as_dict(call.get("function"))
        name = as_str(function.get("name"))
        if name:
            tool.name = name
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            tool.arguments.append(arguments)

    def write_output(self) -> None:
        if self._choices:
            ordered = sorted(self._choices.items())
            self._record.output_messages = [state.output_message() for _, state in ordered]


# --- formats ------------------------------------------------------------------------------


class ChatCompletionsFormat:
    """``POST /chat/completions``."""

    operation = "chat"

    def claims(self, body: Mapping[str, Any]) -> bool:
        return is_model(body) and isinstance(body.get("messages"), list)

    def read_request(self, body: Mapping[str, Any], record: GenerationRecord) -> None:
        read_identity(body, record)
        read_sampling_params(body, record)
        read_output_type(body, record)
        if record.capture_content:
            read_messages(body.get("messages"), record)
            read_tools(body, record)

    def read_response(self, body: Any, record: GenerationRecord) -> None:
        if not isinstance(body, Mapping):
            record.set_error("invalid_response", "response body is not a JSON object")
            return
        read_served_by(body, record)
        choices = as_list(body.get("choices"))
        record.finish_reasons, record.native_finish_reasons = finish_reasons(choices)
        read_usage(body.get("usage"), record)
        if record.capture_content:
            record.output_messages = [
                _output_message(choice, assistant_parts(as_dict(choice.get("message"))))
                for choice in _by_index(choices)
            ]
        error = body.get("error")
        if error is not None:
            read_error_object(error, record)
        record.completed = True

    def read_error(self, body: Any, record: GenerationRecord) -> None:
        read_error_body(body, record)

    def stream_reader(
        self, record: GenerationRecord, *, max_content_chars: int = DEFAULT_MAX_CONTENT_CHARS
    ) -> ChatStreamReader:
        return ChatStreamReader(record, max_content_chars=max_content_chars)


class TextCompletionsFormat:
    """Legacy ``POST /completions`` (``prompt`` in, ``choices[].text`` out)."""

    operation = "text_completion"

    def claims(self, body: Mapping[str, Any]) -> bool:
        return is_model(body) and isinstance(body.get("prompt"), str | list)

    def read_request(self, body: Mapping[str, Any], record: GenerationRecord) -> None:
        read_identity(body, record)
        read_sampling_params(body, record, max_tokens_keys=("max_tokens",))
        if record.capture_content:
            prompt = body.get("prompt")
            prompts = [prompt] if isinstance(prompt, str) else as_list(prompt)
            record.input_messages = [{"role": "user", "parts": [text_part(p)]} for p in prompts if isinstance(p, str)]
            system = body.get("system")  # OpenRouter's completions accept no system; some servers do
            if isinstance(system, str) and system:
                record.system_instructions = [text_part(system)]

    def read_response(self, body: Any, record: GenerationRecord) -> None:
        if not isinstance(body, Mapping):
            record.set_error("invalid_response", "response body is not a JSON object")
            return
        read_served_by(body, record)
        choices = as_list(body.get("choices"))
        record.finish_reasons, record.native_finish_reasons = finish_reasons(choices)
        read_usage(body.get("usage"), record)
        if record.capture_content:
            record.output_messages = [
                _output_message(choice, content_parts(choice.get("text"))) for choice in _by_index(choices)
            ]
        error = body.get("error")
        if error is not None:
            read_error_object(error, record)
        record.completed = True

    def read_error(self, body: Any, record: GenerationRecord) -> None:
        read_error_body(body, record)

    def stream_reader(
        self, record: GenerationRecord, *, max_content_chars: int = DEFAULT_MAX_CONTENT_CHARS
    ) -> ChatStreamReader:
        return ChatStreamReader(record, text_completion=True, max_content_chars=max_content_chars)


def _by_index(choices: list[Any]) -> list[Mapping[str, Any]]:
    valid = [choice for choice in choices if isinstance(choice, Mapping)]
    return sorted(valid, key=lambda choice: as_int(choice.get("index")) or 0)


def _output_message(choice: Mapping[str, Any], parts: list[dict[str, Any]]) -> Message:
    role = get_path(choice, "message", "role")
    return {
        "role": role if isinstance(role, str) else "assistant",
        "parts": parts,
        "finish_reason": as_str(choice.get("finish_reason")) or "",
    }
