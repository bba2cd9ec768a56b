"""OpenAI-compatible embeddings (``POST /embeddings``).

We want the token count and the vector length, never the vectors. A large batch easily
outgrows the JSON size limit of the response observer, so this format also reads just the
head and tail of such a body (``read_oversized``): the first vector is at the head, and
``model`` and ``usage`` follow the data array at the tail.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any

from or_middleware.genai.content import DEFAULT_MAX_CONTENT_CHARS
from or_middleware.genai.fields import as_int, as_list, as_str, is_model
from or_middleware.genai.openai_chat import ChatStreamReader
from or_middleware.genai.openai_common import (
    read_error_body,
    read_error_object,
    read_identity,
    read_served_by,
    read_usage,
)
from or_middleware.genai.record import GenerationRecord

__all__ = ["EmbeddingsFormat"]

# Best-effort patterns for a body too large to decode whole. Usage objects are flat apart
# from one level of *_details objects, which the nested group allows.
_USAGE = re.compile(rb'"usage"\s*:\s*(\{(?:[^{}]|\{[^{}]*\})*\})')
_MODEL = re.compile(rb'"model"\s*:\s*("(?:[^"\\]|\\.)*")')
_ID = re.compile(rb'"id"\s*:\s*("(?:[^"\\]|\\.)*")')
_FIRST_FLOAT_VECTOR = re.compile(rb'"embedding"\s*:\s*\[([^\]]*)\]')
_FIRST_BASE64_VECTOR = re.compile(rb'"embedding"\s*:\s*"([A-Za-z0-9+/=]*)"')


def vector_length(embedding: object) -> int | None:
    """Dimensions of one embedding: a float list, or base64 of little-endian float32s."""
    if isinstance(embedding, list):
        return len(embedding)
    if isinstance(embedding, str):
        try:
            return len(base64.b64decode(embedding, validate=True)) // 4
        except (binascii.Error, ValueError):
            return None
    return None


class EmbeddingsFormat:
    operation = "embeddings"

    def claims(self, body: Mapping[str, Any]) -> bool:
        return is_model(body) and isinstance(body.get("input"), str | list)

    def read_request(self, body: Mapping[str, Any], record: GenerationRecord) -> None:
        read_identity(body, record)
        record.stream = False  # embeddings never stream
        encoding = as_str(body.get("encoding_format"))
        if encoding:
            record.request_params["encoding_formats"] = [encoding]
        dimensions = as_int(body.get("dimensions"))
        if dimensions is not None:
            record.embedding_dimensions = dimensions
        # Inputs are not captured: semconv has no input-messages shape for embeddings, and
        # a batch of documents is exactly the bulk content privacy settings guard against.

    def read_response(self, body: Any, record: GenerationRecord) -> None:
        if not isinstance(body, Mapping):
            record.set_error("invalid_response", "response body is not a JSON object")
            return
        read_served_by(body, record)
        read_usage(body.get("usage"), record)
        for item in as_list(body.get("data")):
            if isinstance(item, Mapping):
                length = vector_length(item.get("embedding"))
                if length:
                    record.embedding_dimensions = length
                break  # every vector of one response has the same length
        error = body.get("error")
        if error is not None:
            read_error_object(error, record)
        record.completed = True

    def read_oversized(self, head: bytes, tail: bytes, record: GenerationRecord) -> bool:
        """Usage, model and dimensions from the first and last bytes of a huge body.

        Returns whether enough was found (the usage) to treat the response as read.
        """
        usage_match = _USAGE.search(tail)
        if usage_match is None:
            return False
        try:
            usage = json.loads(usage_match.group(1))
        except ValueError:
            return False
        read_usage(usage, record)
        for pattern, attr in ((_MODEL, "response_model"), (_ID, "response_id")):
            match = pattern.search(tail) or pattern.search(head)
            if match:
                try:
                    value = json.loads(match.group(1))
                except ValueError:
                    continue
                if isinstance(value, str) and value:
                    setattr(record, attr, value)
        floats = _FIRST_FLOAT_VECTOR.search(head)
        if floats:
            record.embedding_dimensions = floats.group(1).count(b",") + 1
        else:
            encoded = _FIRST_BASE64_VECTOR.search(head)
            if encoded:
                record.embedding_dimensions = vector_length(encoded.group(1).decode("ascii")) or None
        record.completed = True
        return True

    def read_error(self, body: Any, record: GenerationRecord) -> None:
        read_error_body(body, record)

    def stream_reader(
        self, record: GenerationRecord, *, max_content_chars: int = DEFAULT_MAX_CONTENT_CHARS
    ) -> ChatStreamReader:
        # Embeddings have no stream; should a server send SSE anyway, chat chunks are the
        # closest shape (and the reader records truncation and errors the same way).
        return ChatStreamReader(record, max_content_chars=max_content_chars)
