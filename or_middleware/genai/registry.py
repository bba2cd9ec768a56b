"""Which wire format a request speaks, from the URL path alone (no body is read here).

Every format declares the path ends it claims; the lookup is one or two dictionary hits on
the path's last segments, so a request that is no LLM call costs a split and a miss:
- ``{model}:{method}`` last segments are Gemini/Vertex methods (the model comes from the path);
- otherwise the last two segments (``chat/completions``, ``api/chat``, ``v2/chat`` ...), then
  the last one (``completions``, ``responses``, ``embeddings``, ``messages``).
Only exact path ends match, so ``/responses/{id}``, ``/messages/count_tokens`` or
``/messages/batches`` are not generations. Every API kind gets every format: OpenRouter
serves ``/messages``, Anthropic an OpenAI-compatible ``/chat/completions``, a gateway any.
"""

from __future__ import annotations

from or_middleware.genai.anthropic_messages import AnthropicMessagesFormat
from or_middleware.genai.cohere import COHERE_CHAT, COHERE_EMBED
from or_middleware.genai.embeddings import EmbeddingsFormat
from or_middleware.genai.formats import WireFormat
from or_middleware.genai.gemini import gemini_format_for
from or_middleware.genai.ollama import OLLAMA_CHAT, OLLAMA_EMBED, OLLAMA_EMBEDDINGS, OLLAMA_GENERATE
from or_middleware.genai.openai_chat import ChatCompletionsFormat, TextCompletionsFormat
from or_middleware.genai.openai_responses import ResponsesFormat

__all__ = ["API_KINDS", "format_for"]

API_KINDS = frozenset({"openai", "anthropic"})

# Formats keep no per-call state (that lives in the record and the stream reader), so one
# instance of each serves every request (Gemini's, bound to the path's model, are per call).
CHAT = ChatCompletionsFormat()
TEXT_COMPLETIONS = TextCompletionsFormat()
RESPONSES = ResponsesFormat()
EMBEDDINGS = EmbeddingsFormat()
MESSAGES = AnthropicMessagesFormat()

_BY_LAST_TWO: dict[str, WireFormat] = {
    "chat/completions": CHAT,
    "api/chat": OLLAMA_CHAT,
    "api/generate": OLLAMA_GENERATE,
    "api/embed": OLLAMA_EMBED,
    "api/embeddings": OLLAMA_EMBEDDINGS,
    "v2/chat": COHERE_CHAT,
    "v2/embed": COHERE_EMBED,
}
_BY_LAST: dict[str, WireFormat] = {
    "completions": TEXT_COMPLETIONS,
    "responses": RESPONSES,
    "embeddings": EMBEDDINGS,
    "messages": MESSAGES,
}


def format_for(api_kind: str, path: str) -> WireFormat | None:
    """The format for a call to an LLM API of ``api_kind`` ("openai" or "anthropic") at ``path``.

    ``path`` is the URL path (a query string, if passed, is ignored). None: not a generation
    endpoint we parse (model lists, file uploads, batch, ...).
    """
    if api_kind not in API_KINDS:
        return None
    path = path.split("?", 1)[0].rstrip("/")
    head, _, last = path.rpartition("/")
    if ":" in last:
        return gemini_format_for(path)
    fmt = _BY_LAST_TWO.get(f"{head.rpartition('/')[2]}/{last}")
    return fmt if fmt is not None else _BY_LAST.get(last)
