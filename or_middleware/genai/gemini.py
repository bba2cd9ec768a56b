"""Gemini API and Vertex AI (``generateContent``, ``streamGenerateContent``, embeddings).

Paths (the model is in the path, not the body):
- Gemini API: ``/v1beta/models/{model}:generateContent`` and ``:streamGenerateContent``
  (``?alt=sse`` for SSE, else a JSON array sent piece by piece), ``:embedContent``,
  ``:batchEmbedContents``. https://ai.google.dev/api/generate-content
- Vertex AI: ``/v1/projects/{p}/locations/{l}/publishers/google/models/{model}:...`` with the
  same bodies, plus ``:predict`` for text embedding models.
  https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/inference

Usage (``usageMetadata``): ``promptTokenCount`` already includes ``cachedContentTokenCount``
(as semconv's input tokens do); ``candidatesTokenCount`` excludes ``thoughtsTokenCount``, so
output tokens are their sum (semconv output tokens include reasoning); the prompt tokens of
tool use (``toolUsePromptTokenCount``) count as input. A ``promptFeedback.blockReason`` means
the prompt was refused: error ``prompt_blocked_<reason>``. Errors: ``{"error": {"code",
"message", "status"}}``, as a non-2xx body or inside a 200 stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from or_middleware.genai.content import (
    DEFAULT_MAX_CONTENT_CHARS,
    CappedText,
    message,
    reasoning_part,
    text_part,
    tool_call_part,
)
from or_middleware.genai.fields import as_dict, as_float, as_int, as_list, as_str, get_path
from or_middleware.genai.params import ParamTable, read_params, response_object
from or_middleware.genai.record import GenerationRecord, Message
from or_middleware.genai.stream import EventStreamReader

__all__ = ["GeminiFormat", "gemini_format_for"]

MAX_CANDIDATES = 32

_GENERATE = frozenset({"generateContent", "streamGenerateContent"})
_EMBED = frozenset({"embedContent", "batchEmbedContents", "predict"})
_PARAMS: ParamTable = (
    ("temperature", "temperature", as_float),
    ("topP", "top_p", as_float),
    ("topK", "top_k", as_int),
    ("maxOutputTokens", "max_tokens", as_int),
    ("candidateCount", "choice.count", as_int),
    ("seed", "seed", as_int),
    ("presencePenalty", "presence_penalty", as_float),
    ("frequencyPenalty", "frequency_penalty", as_float),
)


def _get(body: Mapping[str, Any], camel: str) -> Any:
    """A field by its JSON (camelCase) name, or the snake_case name proto JSON also accepts."""
    value = body.get(camel)
    if value is None:
        snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)
        value = body.get(snake)
    return value


# --- content in semconv shape -------------------------------------------------------------


def gemini_parts(parts: object) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for part in as_list(parts):
        if not isinstance(part, Mapping):
            continue
        text = part.get("text")
        if isinstance(text, str):
            out.append(reasoning_part(text) if part.get("thought") is True else text_part(text))
            continue
        call = _get(part, "functionCall")
        if isinstance(call, Mapping):
            out.append(tool_call_part(call.get("id"), call.get("name"), call.get("args")))
            continue
        result = _get(part, "functionResponse")
        if isinstance(result, Mapping):
            call_id = result.get("id")
            out.append({"type": "tool_call_response", "id": call_id if isinstance(call_id, str) else None,
                        "response": result.get("response")})
            continue
        inline = _get(part, "inlineData")
        if isinstance(inline, Mapping):
            mime = as_str(_get(inline, "mimeType"))
            out.append({"type": "blob", "modality": (mime or "").split("/", 1)[0] or None, "mime_type": mime,
                        "content": inline.get("data")})
            continue
        file = _get(part, "fileData")
        if isinstance(file, Mapping):
            mime = as_str(_get(file, "mimeType"))
            out.append({"type": "uri", "modality": (mime or "").split("/", 1)[0] or None, "mime_type": mime,
                        "uri": as_str(_get(file, "fileUri"))})
            continue
        kinds = [key for key in part if isinstance(key, str) and key not in ("thoughtSignature", "thought_signature")]
        if kinds:
            out.append({"type": kinds[0]})  # executableCode, codeExecutionResult, ...
    return out


def _role(role: object) -> str:
    return "assistant" if role == "model" else role if isinstance(role, str) and role else "user"


def read_contents(body: Mapping[str, Any], record: GenerationRecord) -> None:
    system = _get(body, "systemInstruction")
    if isinstance(system, str):
        record.system_instructions = [text_part(system)]
    elif isinstance(system, Mapping):
        parts = gemini_parts(system.get("parts"))
        if parts:
            record.system_instructions = parts
    inputs: list[Message] = []
    for content in as_list(body.get("contents")):
        if isinstance(content, Mapping):
            inputs.append(message(_role(content.get("role")), gemini_parts(content.get("parts"))))
    record.input_messages = inputs
    definitions: list[dict[str, Any]] = []
    for tool in as_list(body.get("tools")):
        for declaration in as_list(_get(as_dict(tool), "functionDeclarations")):
            if isinstance(declaration, Mapping):
                definition: dict[str, Any] = {"type": "function"}
                for key in ("name", "description", "parameters"):
                    if declaration.get(key) is not None:
                        definition[key] = declaration[key]
                definitions.append(definition)
    if definitions:
        record.tool_definitions = definitions


# --- responses ------------------------------------------------------------------------------


def read_usage_metadata(usage: object, record: GenerationRecord) -> None:
    if not isinstance(usage, Mapping):
        return
    prompt = as_int(_get(usage, "promptTokenCount"))
    tool_prompt = as_int(_get(usage, "toolUsePromptTokenCount"))
    candidates = as_int(_get(usage, "candidatesTokenCount"))
    thoughts = as_int(_get(usage, "thoughtsTokenCount"))
    cached = as_int(_get(usage, "cachedContentTokenCount"))
    total = as_int(_get(usage, "totalTokenCount"))
    if prompt is not None or tool_prompt is not None:
        record.input_tokens = (prompt or 0) + (tool_prompt or 0)
    if candidates is not None or thoughts is not None:
        record.output_tokens = (candidates or 0) + (thoughts or 0)
    if thoughts is not None:
        record.reasoning_tokens = thoughts
    if cached is not None:
        record.cache_read_tokens = cached
    if total is not None:
        record.total_tokens = total


def read_google_error(error: object, record: GenerationRecord) -> bool:
    """``{"code": 429, "message": ..., "status": "RESOURCE_EXHAUSTED"}``: the status names it."""
    if not isinstance(error, Mapping):
        if isinstance(error, str) and error:
            record.set_error("error", error)
            return True
        return False
    status = as_str(error.get("status"))
    code = as_int(error.get("code"))
    error_type = status or (str(code) if code is not None else "error")
    text = error.get("message")
    record.set_error(error_type, text if isinstance(text, str) else None)
    return True


def read_chunk_header(body: Mapping[str, Any], record: GenerationRecord) -> None:
    """responseId, modelVersion, usage, prompt feedback and errors of a response or chunk."""
    response_id = as_str(_get(body, "responseId"))
    if response_id and record.response_id is None:
        record.response_id = response_id
    version = as_str(_get(body, "modelVersion"))
    if version:
        record.response_model = version
    read_usage_metadata(_get(body, "usageMetadata"), record)
    blocked = as_str(get_path(as_dict(_get(body, "promptFeedback")), "blockReason"))
    if blocked is None:
        blocked = as_str(as_dict(_get(body, "promptFeedback")).get("block_reason"))
    if blocked:
        record.set_error(f"prompt_blocked_{blocked.lower()}"[:64], _get(as_dict(_get(body, "promptFeedback")),
                                                                        "blockReasonMessage"))
        record.completed = True  # a documented answer, not a cut-off stream
    error = body.get("error")
    if error is not None:
        read_google_error(error, record)


def _finish(candidates: list[Any]) -> list[str]:
    ordered = sorted((c for c in candidates if isinstance(c, Mapping)), key=lambda c: as_int(c.get("index")) or 0)
    return [reason for c in ordered if (reason := as_str(_get(c, "finishReason")))]


class _Candidate:
    __slots__ = ("finish_reason", "parts", "reasoning", "text")

    def __init__(self, reader: GeminiStreamReader) -> None:
        self.finish_reason: str | None = None
        self.text = CappedText(reader._budget)
        self.reasoning = CappedText(reader._budget)
        self.parts: list[dict[str, Any]] = []  # tool calls and other whole parts, in order

    def output_message(self) -> Message:
        parts: list[dict[str, Any]] = []
        if self.reasoning:
            parts.append(reasoning_part(self.reasoning.value()))
        if self.text:
            parts.append(text_part(self.text.value()))
        parts.extend(self.parts)
        return {"role": "assistant", "parts": parts, "finish_reason": self.finish_reason or ""}


class GeminiStreamReader(EventStreamReader):
    """Each event is a whole GenerateContentResponse; the last one has the finish reasons
    and the final usage. There is no end marker: a stream is complete once a finish
    reason (or a prompt block) arrived."""

    end_marker = "a finishReason"
    fact_keys = ('"finishReason"', '"usageMetadata"', '"error"', '"promptFeedback"', '"finish_reason"')

    def __init__(self, record: GenerationRecord, *, max_content_chars: int = DEFAULT_MAX_CONTENT_CHARS) -> None:
        super().__init__(record, max_content_chars=max_content_chars)
        self._candidates: dict[int, _Candidate] = {}

    def handle(self, event: str | None, chunk: Mapping[str, Any], now: float) -> None:
        record = self._record
        record.chunk_count += 1
        read_chunk_header(chunk, record)
        changed = False
        for candidate in as_list(chunk.get("candidates")):
            if not isinstance(candidate, Mapping):
                continue
            index = as_int(candidate.get("index")) or 0
            state = self._candidates.get(index)
            if state is None:
                if len(self._candidates) >= MAX_CANDIDATES:
                    continue
                state = self._candidates[index] = _Candidate(self)
            parts = as_list(as_dict(candidate.get("content")).get("parts"))
            if parts:
                self.first_chunk(now)
                if self._capture:
                    self._collect(state, parts)
            reason = as_str(_get(candidate, "finishReason"))
            if reason and reason != state.finish_reason:
                state.finish_reason = reason
                changed = True
        if changed:
            ordered = sorted(self._candidates.items())
            record.finish_reasons = [s.finish_reason for _, s in ordered if s.finish_reason]
            record.completed = True

    @staticmethod
    def _collect(state: _Candidate, parts: list[Any]) -> None:
        for part in gemini_parts(parts):
            if part["type"] == "text":
                state.text.append(part["content"])
            elif part["type"] == "reasoning":
                state.reasoning.append(part["content"])
            elif len(state.parts) < 128:
                state.parts.append(part)

    def write_output(self) -> None:
        if self._candidates:
            self._record.output_messages = [s.output_message() for _, s in sorted(self._candidates.items())]


class GeminiFormat:
    """One Gemini/Vertex method, bound to the model and provider its path names."""

    def __init__(self, method: str, model: str | None, provider: str) -> None:
        self.method = method
        self.model = model
        self.native_provider = provider
        self.operation = "embeddings" if method in _EMBED else "generate_content"
        # Without alt=sse a stream is a JSON array under application/json.
        self.json_stream_framing = "json_array" if method == "streamGenerateContent" else None

    def claims(self, body: Mapping[str, Any]) -> bool:
        if self.method in _GENERATE:
            return isinstance(body.get("contents"), list)
        if self.method == "embedContent":
            return isinstance(body.get("content"), Mapping)
        if self.method == "batchEmbedContents":
            return isinstance(body.get("requests"), list)
        return isinstance(body.get("instances"), list)

    def read_request(self, body: Mapping[str, Any], record: GenerationRecord) -> None:
        record.request_model = self.model
        record.stream = self.method == "streamGenerateContent"
        if self.operation == "embeddings":
            dims = as_int(_get(body, "outputDimensionality"))
            if dims is not None:
                record.embedding_dimensions = dims
            return
        config = as_dict(_get(body, "generationConfig"))
        read_params(_PARAMS, config, record, stops="stopSequences", get=_get)
        mime = as_str(_get(config, "responseMimeType"))
        if mime:
            record.output_type = "json" if mime == "application/json" else "text"
        if record.capture_content:
            read_contents(body, record)

    def read_response(self, body: Any, record: GenerationRecord) -> None:
        if isinstance(body, list):  # a whole JSON-array stream read as one body
            for chunk in body:
                if isinstance(chunk, Mapping):
                    self.read_response(chunk, record)
            return
        body = response_object(body, record)
        if body is None:
            return
        if self.operation == "embeddings":
            self._read_embeddings(body, record)
            return
        read_chunk_header(body, record)
        candidates = as_list(body.get("candidates"))
        reasons = _finish(candidates)
        if reasons:
            record.finish_reasons = reasons
        if record.capture_content and candidates:
            ordered = sorted((c for c in candidates if isinstance(c, Mapping)),
                             key=lambda c: as_int(c.get("index")) or 0)
            record.output_messages = [
                {"role": "assistant", "parts": gemini_parts(as_dict(c.get("content")).get("parts")),
                 "finish_reason": as_str(_get(c, "finishReason")) or ""}
                for c in ordered
            ]
        record.completed = True

    def _read_embeddings(self, body: Mapping[str, Any], record: GenerationRecord) -> None:
        vectors = [as_dict(body.get("embedding"))] + [as_dict(e) for e in as_list(body.get("embeddings"))]
        tokens = 0
        for prediction in as_list(body.get("predictions")):  # Vertex :predict
            embeddings = as_dict(as_dict(prediction).get("embeddings"))
            vectors.append(embeddings)
            tokens += as_int(get_path(embeddings, "statistics", "token_count")) or 0
        for vector in vectors:
            values = vector.get("values")
            if isinstance(values, list) and values:
                record.embedding_dimensions = len(values)
                break
        if tokens:
            record.input_tokens = tokens
        read_usage_metadata(_get(body, "usageMetadata"), record)
        error = body.get("error")
        if error is not None:
            read_google_error(error, record)
        record.completed = True

    def read_error(self, body: Any, record: GenerationRecord) -> None:
        if isinstance(body, list) and body:  # errors come as [{"error": ...}] on some paths
            body = body[0]
        if isinstance(body, Mapping) and "error" in body:
            read_google_error(body["error"], record)

    def stream_reader(
        self, record: GenerationRecord, *, max_content_chars: int = DEFAULT_MAX_CONTENT_CHARS
    ) -> GeminiStreamReader:
        return GeminiStreamReader(record, max_content_chars=max_content_chars)


def gemini_format_for(path: str) -> GeminiFormat | None:
    """The format for a path whose last segment is ``{model}:{method}``, else None."""
    segment = path.rsplit("/", 1)[-1]
    model, colon, method = segment.rpartition(":")
    if not colon or (method not in _GENERATE and method not in _EMBED):
        return None
    if method == "predict" and "/publishers/google/" not in path:
        return None  # :predict is Vertex's generic prediction; only Google's models are embeddings here
    provider = "gcp.vertex_ai" if "/projects/" in path or path.startswith("projects/") else "gcp.gemini"
    return GeminiFormat(method, model or None, provider)
