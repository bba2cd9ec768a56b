"""The interface every wire-format reader implements, and the path -> format lookup."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from or_middleware.genai.record import GenerationRecord


class StreamReader(Protocol):
    """Reads one response's server-sent events, in order."""

    def on_event(self, event: str | None, data: str, now: float) -> None:
        """One decoded SSE event (``event:`` name or None, joined ``data:`` lines).

        ``now`` is time.perf_counter(); the first content/reasoning/tool-call delta sets
        ``record.time_to_first_chunk = now - record.started_at``.
        """

    def on_end(self) -> None:
        """The byte stream ended. A stream that never reached its documented end
        ([DONE], message_stop, response.completed, ...) gets ``record.set_error("truncated", ...)``."""

    def finalize(self) -> None:
        """Write the output reassembled so far into the record, without judging completeness
        (the body was abandoned; the caller decides whether that is an error). Idempotent;
        on_end calls it too."""


class WireFormat(Protocol):
    """One API's request and response shapes (OpenAI chat, Responses, Anthropic Messages, ...)."""

    operation: str  # semconv gen_ai.operation.name

    def read_request(self, body: Mapping[str, Any], record: GenerationRecord) -> None:
        """Model, stream flag, request params, user/session/trace fields, and (when
        record.capture_content) system instructions, input messages and tool definitions."""

    def read_response(self, body: Any, record: GenerationRecord) -> None:
        """A complete non-streaming JSON response body (already json-decoded)."""

    def read_error(self, body: Any, record: GenerationRecord) -> None:
        """A JSON error body (HTTP status >= 400), already json-decoded."""

    def stream_reader(self, record: GenerationRecord, *, max_content_chars: int = ...) -> StreamReader:
        """A reader for this format's SSE stream.

        ``max_content_chars`` caps the output text it reassembles when record.capture_content
        (one budget for all choices, tool calls and reasoning; a truncation marker is appended).
        """
