"""Ollama's native API: ``/api/chat``, ``/api/generate``, ``/api/embed`` (and legacy ``/api/embeddings``).

https://github.com/ollama/ollama/blob/main/docs/api.md. Streams are newline-delimited JSON
(``application/x-ndjson``) and are the default: a request streams unless ``"stream": false``.
The last object has ``"done": true``, ``done_reason``, ``prompt_eval_count`` (input tokens)
and ``eval_count`` (output tokens). Errors: ``{"error": "..."}``, as a non-2xx body or as a
line inside a 200 stream. Ollama gives no response id.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from or_middleware.genai.content import DEFAULT_MAX_CONTENT_CHARS, CappedText, reasoning_part, text_part, tool_call_part
from or_middleware.genai.fields import as_dict, as_float, as_int, as_list, as_str, is_model
from or_middleware.genai.openai_chat import read_messages, read_tools
from or_middleware.genai.params import ParamTable, read_params, response_object, set_tokens
from or_middleware.genai.record import GenerationRecord
from or_middleware.genai.stream import EventStreamReader

__all__ = ["OllamaFormat"]

_OPTIONS: ParamTable = (
    ("temperature", "temperature", as_float),
    ("top_p", "top_p", as_float),
    ("top_k", "top_k", as_int),
    ("num_predict", "max_tokens", as_int),
    ("seed", "seed", as_int),
    ("presence_penalty", "presence_penalty", as_float),
    ("frequency_penalty", "frequency_penalty", as_float),
)


def read_final(body: Mapping[str, Any], record: GenerationRecord) -> None:
    """Model, counts, done_reason and errors of a whole answer or of any stream object."""
    model = as_str(body.get("model"))
    if model:
        record.response_model = model
    set_tokens(record, body.get("prompt_eval_count"), body.get("eval_count"))
    reason = as_str(body.get("done_reason"))
    if reason:
        record.finish_reasons = [reason]
    if body.get("done") is True:
        record.completed = True
    error = body.get("error")
    if isinstance(error, str | Mapping) and error:
        message = error if isinstance(error, str) else as_str(error.get("message"))
        record.set_error("error", message)


def _tool_calls(msg: Mapping[str, Any]) -> list[dict[str, Any]]:
    parts = []
    for call in as_list(msg.get("tool_calls")):
        function = as_dict(as_dict(call).get("function"))
        if function:
            parts.append(tool_call_part(as_dict(call).get("id"), function.get("name"), function.get("arguments")))
    return parts


class OllamaStreamReader(EventStreamReader):
    end_marker = '"done": true'
    fact_keys = ('"error"',)
    routine_values = (('"done"', "false"),)  # the last chunk ("done": true) carries the usage

    def __init__(self, record: GenerationRecord, fmt: OllamaFormat, max_content_chars: int) -> None:
        super().__init__(record, max_content_chars=max_content_chars)
        self._fmt = fmt
        self._text = CappedText(self._budget)
        self._thinking = CappedText(self._budget)
        self._calls: list[dict[str, Any]] = []

    def handle(self, event: str | None, chunk: Mapping[str, Any], now: float) -> None:
        self._record.chunk_count += 1
        read_final(chunk, self._record)
        msg = as_dict(chunk.get("message"))
        text = msg.get("content") if msg else chunk.get("response")
        thinking = msg.get("thinking") if msg else chunk.get("thinking")
        calls = _tool_calls(msg) if msg else []
        for piece, target in ((text, self._text), (thinking, self._thinking)):
            if isinstance(piece, str) and piece:
                self.first_chunk(now)
                if self._capture:
                    target.append(piece)
        if calls:
            self.first_chunk(now)
            if self._capture and len(self._calls) < 128:
                self._calls.extend(calls)

    def write_output(self) -> None:
        parts: list[dict[str, Any]] = []
        if self._thinking:
            parts.append(reasoning_part(self._thinking.value()))
        if self._text:
            parts.append(text_part(self._text.value()))
        parts.extend(self._calls)
        reason = self._record.finish_reasons[0] if self._record.finish_reasons else ""
        self._record.output_messages = [{"role": "assistant", "parts": parts, "finish_reason": reason}]


class OllamaFormat:
    native_provider = "ollama"
    stream_framing = "ndjson"

    def __init__(self, kind: str) -> None:
        self.kind = kind  # chat | generate | embed | embeddings (legacy)
        self.operation = {"chat": "chat", "generate": "text_completion"}.get(kind, "embeddings")

    def claims(self, body: Mapping[str, Any]) -> bool:
        if not is_model(body):
            return False
        if self.kind == "chat":
            return isinstance(body.get("messages"), list)
        if self.kind == "embed":
            return isinstance(body.get("input"), str | list)
        return isinstance(body.get("prompt"), str)  # generate (a bare load has no prompt: not a call)

    def read_request(self, body: Mapping[str, Any], record: GenerationRecord) -> None:
        record.request_model = as_str(body.get("model"))
        record.stream = self.operation != "embeddings" and body.get("stream") is not False
        read_params(_OPTIONS, as_dict(body.get("options")), record, stops="stop")
        if body.get("format") is not None:
            record.output_type = "json"
        dims = as_int(body.get("dimensions"))
        if dims is not None:
            record.embedding_dimensions = dims
        if not record.capture_content or self.operation == "embeddings":
            return
        if self.kind == "chat":
            read_messages(body.get("messages"), record)
            read_tools(body, record)  # OpenAI's tool shape
        else:
            prompt = as_str(body.get("prompt"))
            record.input_messages = [{"role": "user", "parts": [text_part(prompt)] if prompt else []}]
            system = as_str(body.get("system"))
            if system:
                record.system_instructions = [text_part(system)]

    def read_response(self, body: Any, record: GenerationRecord) -> None:
        body = response_object(body, record)
        if body is None:
            return
        read_final(body, record)
        if self.operation == "embeddings":
            vectors = as_list(body.get("embeddings")) or [body.get("embedding")]
            if isinstance(vectors[0], list) and vectors[0]:
                record.embedding_dimensions = len(vectors[0])
            record.completed = True
            return
        record.completed = True
        if record.capture_content:
            msg = as_dict(body.get("message"))
            parts: list[dict[str, Any]] = []
            thinking = msg.get("thinking") if msg else body.get("thinking")
            text = msg.get("content") if msg else body.get("response")
            if isinstance(thinking, str) and thinking:
                parts.append(reasoning_part(thinking))
            if isinstance(text, str) and text:
                parts.append(text_part(text))
            parts.extend(_tool_calls(msg))
            reason = record.finish_reasons[0] if record.finish_reasons else ""
            record.output_messages = [{"role": "assistant", "parts": parts, "finish_reason": reason}]

    def read_error(self, body: Any, record: GenerationRecord) -> None:
        error = body.get("error") if isinstance(body, Mapping) else body
        if isinstance(error, str) and error:
            record.set_error(f"http_{record.status_code}" if record.status_code else "error", error)

    def stream_reader(
        self, record: GenerationRecord, *, max_content_chars: int = DEFAULT_MAX_CONTENT_CHARS
    ) -> OllamaStreamReader:
        return OllamaStreamReader(record, self, max_content_chars)


OLLAMA_CHAT = OllamaFormat("chat")
OLLAMA_GENERATE = OllamaFormat("generate")
OLLAMA_EMBED = OllamaFormat("embed")
OLLAMA_EMBEDDINGS = OllamaFormat("embeddings")
