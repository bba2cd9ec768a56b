"""GenerationRecord: everything we learn about one LLM call, filled by the wire-format readers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# A message in the OpenTelemetry GenAI semconv shape:
# {"role": "user", "parts": [{"type": "text", "content": "..."}]}
Message = dict[str, Any]


@dataclass(slots=True)
class GenerationRecord:
    """One LLM call as observed on the wire.

    Request-side fields are filled from the request body before the call is sent,
    response-side fields while the response bytes pass through. Content fields
    (``system_instructions`` .. ``tool_definitions``, ``error_message``) are only
    filled when ``capture_content`` is true, i.e. some destination may receive content.
    """

    provider: str
    operation: str = "chat"  # chat | text_completion | embeddings
    capture_content: bool = False
    started_at: float = 0.0  # time.perf_counter() when the request was sent

    # request
    request_model: str | None = None
    stream: bool = False
    request_params: dict[str, Any] = field(default_factory=dict)  # semconv suffix -> value
    user: str | None = None
    session: str | None = None
    trace_name: str | None = None
    trace_metadata: dict[str, str] = field(default_factory=dict)
    output_type: str | None = None  # semconv gen_ai.output.type (json | text), from response_format

    # response
    status_code: int | None = None
    response_id: str | None = None
    response_model: str | None = None
    served_by: str | None = None  # upstream provider that served it (OpenRouter `provider`)
    finish_reasons: list[str] = field(default_factory=list)
    native_finish_reasons: list[str] = field(default_factory=list)
    input_tokens: int | None = None  # includes cached input tokens (semconv)
    output_tokens: int | None = None  # includes reasoning tokens
    total_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_creation_tokens: int | None = None
    reasoning_tokens: int | None = None
    embedding_dimensions: int | None = None
    cost: float | None = None  # USD
    input_cost: float | None = None
    output_cost: float | None = None
    cost_source: str | None = None  # provider | price_table
    is_byok: bool | None = None

    # streaming
    time_to_first_chunk: float | None = None  # seconds from started_at
    chunk_count: int = 0
    completed: bool = False  # the response reached its documented end ([DONE], message_stop, ...)

    # errors
    error_type: str | None = None
    error_message: str | None = None  # content class: may echo the prompt

    # content (only when capture_content)
    system_instructions: list[dict[str, Any]] | None = None
    input_messages: list[Message] | None = None
    output_messages: list[Message] | None = None
    tool_definitions: list[dict[str, Any]] | None = None

    def set_error(self, error_type: str, message: str | None = None) -> None:
        """Record the first error seen; later ones are consequences of it."""
        if self.error_type is None:
            self.error_type = error_type
            if self.capture_content and message:
                self.error_message = message
