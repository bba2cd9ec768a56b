"""Which wire format a request speaks, from the API kind and the URL path."""

from __future__ import annotations

from or_middleware.genai.anthropic_messages import AnthropicMessagesFormat
from or_middleware.genai.embeddings import EmbeddingsFormat
from or_middleware.genai.formats import WireFormat
from or_middleware.genai.openai_chat import ChatCompletionsFormat, TextCompletionsFormat
from or_middleware.genai.openai_responses import ResponsesFormat

__all__ = ["API_KINDS", "format_for"]

API_KINDS = frozenset({"openai", "anthropic"})

# Formats keep no per-call state (that lives in the record and the stream reader), so one
# instance of each serves every request.
CHAT = ChatCompletionsFormat()
TEXT_COMPLETIONS = TextCompletionsFormat()
RESPONSES = ResponsesFormat()
EMBEDDINGS = EmbeddingsFormat()
MESSAGES = AnthropicMessagesFormat()

# Longest suffix first: "/chat/completions" also ends with "/completions". Only exact path
# ends match, so "/responses/{id}", "/messages/count_tokens" or "/messages/batches" are not
# generations. Both kinds get every format: OpenRouter serves /messages, and Anthropic an
# OpenAI-compatible /chat/completions.
_SUFFIXES: tuple[tuple[str, WireFormat], ...] = (
    ("/chat/completions", CHAT),
    ("/completions", TEXT_COMPLETIONS),
    ("/responses", RESPONSES),
    ("/embeddings", EMBEDDINGS),
    ("/messages", MESSAGES),
)


def format_for(api_kind: str, path: str) -> WireFormat | None:
    """The format for a call to an LLM API of ``api_kind`` ("openai" or "anthropic") at ``path``.

    ``path`` is the URL path (a query string, if passed, is ignored). None: not a generation
    endpoint we parse (model lists, file uploads, batch, ...).
    """
    if api_kind not in API_KINDS:
        return None
    path = path.split("?", 1)[0].rstrip("/")
    for suffix, fmt in _SUFFIXES:
        if path.endswith(suffix):
            return fmt
    return None
