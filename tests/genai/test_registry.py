from __future__ import annotations

import pytest

from or_middleware.genai.anthropic_messages import AnthropicMessagesFormat
from or_middleware.genai.embeddings import EmbeddingsFormat
from or_middleware.genai.openai_chat import ChatCompletionsFormat, TextCompletionsFormat
from or_middleware.genai.openai_responses import ResponsesFormat
from or_middleware.genai.registry import format_for


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/chat/completions", ChatCompletionsFormat),
        ("/api/v1/chat/completions", ChatCompletionsFormat),
        ("/openai/deployments/gpt4o/chat/completions", ChatCompletionsFormat),
        ("/v1/chat/completions/", ChatCompletionsFormat),
        ("/v1/chat/completions?api-version=2024-10-21", ChatCompletionsFormat),
        ("/v1/completions", TextCompletionsFormat),
        ("/v1/responses", ResponsesFormat),
        ("/v1/embeddings", EmbeddingsFormat),
        ("/v1/messages", AnthropicMessagesFormat),
        ("/api/v1/messages", AnthropicMessagesFormat),
    ],
)
def test_generation_endpoints(kind: str, path: str, expected: type) -> None:
    assert isinstance(format_for(kind, path), expected)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/responses/resp_123",
        "/v1/responses/resp_123/input_items",
        "/v1/messages/count_tokens",
        "/v1/messages/batches",
        "/v1/models",
        "/v1/files",
        "/api/v1/generation",
        "/v1/chat/completions/chatcmpl-123",
        "",
    ],
)
def test_other_endpoints(path: str) -> None:
    assert format_for("openai", path) is None


def test_unknown_kind() -> None:
    assert format_for("gemini", "/v1/chat/completions") is None


def test_formats_are_singletons() -> None:
    assert format_for("openai", "/v1/chat/completions") is format_for("anthropic", "/api/v1/chat/completions")
