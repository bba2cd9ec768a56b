"""What the fake upstream answers, decided from the request alone (no wire shapes here).

Everything is deterministic so tests can assert exact values: the reply is ``"Echo: " +
<last user text>``, a token is a whitespace-separated word, and cost is a fixed price per token.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PROMPT_PRICE = 0.000001  # USD per input token, the fake's "price table"
COMPLETION_PRICE = 0.000002  # USD per output token
REASONING_TEXT = "Let me echo the prompt."
DEFAULT_MAX_CHUNKS = 4


@dataclass(frozen=True)
class ToolCall:
    call_id: str
    name: str
    arguments: str  # the complete JSON text
    fragments: list[str]  # ``arguments`` cut into pieces, streamed one per chunk


@dataclass(frozen=True)
class Reply:
    """One planned answer; the format builders only reshape it."""

    flavour: str  # "openrouter" | "openai" | "anthropic"
    ident: str
    seq: int  # the request's number on this fake, for derived ids
    created: int
    model: str  # the model that "served" the request
    provider: str
    text: str
    chunks: list[str]  # ``text`` cut into stream deltas; "".join(chunks) == text
    tool: ToolCall | None
    finish: str  # OpenAI-normalised: "stop" | "length" | "tool_calls"
    prompt_tokens: int  # includes cached and cache-write tokens (OpenAI convention)
    completion_tokens: int  # includes reasoning tokens (OpenAI convention)
    reasoning_tokens: int = 0
    reasoning_chunks: list[str] = field(default_factory=list)
    cached_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def prompt_cost(self) -> float:
        return round(self.prompt_tokens * PROMPT_PRICE, 12)

    @property
    def completion_cost(self) -> float:
        return round(self.completion_tokens * COMPLETION_PRICE, 12)

    @property
    def cost(self) -> float:
        return round(self.prompt_cost + self.completion_cost, 12)


def texts_of(value: Any) -> list[str]:
    """Every piece of text inside a message, content block list or input item, in order."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [t for item in value for t in texts_of(item)]
    if isinstance(value, Mapping):
        out: list[str] = []
        for key in ("text", "content", "output", "input"):
            if key in value:
                out.extend(texts_of(value[key]))
        return out
    return []


def count_words(texts: list[str]) -> int:
    return sum(len(t.split()) for t in texts)


def prompt_texts(fmt: str, body: Mapping[str, Any]) -> tuple[list[str], str]:
    """(all input texts, the last user text) for a request of format ``fmt``."""
    if fmt == "completions":
        texts = texts_of(body.get("prompt", ""))
        return texts, texts[-1] if texts else ""
    if fmt == "embeddings":
        texts = texts_of(body.get("input", ""))
        return texts, texts[-1] if texts else ""
    system = texts_of(body.get("system" if fmt == "messages" else "instructions", ""))
    items = body.get("input" if fmt == "responses" else "messages", [])
    if isinstance(items, str):  # Responses API: a bare string is one user message
        return [*system, items], items
    items = items if isinstance(items, list) else []
    texts = system + texts_of(items)
    users = [m for m in items if isinstance(m, Mapping) and m.get("role") == "user"]
    return texts, " ".join(texts_of(users[-1])) if users else ""


def split_even(words: list[str], n: int) -> list[str]:
    """``n`` chunks of consecutive words whose concatenation is ``" ".join(words)``."""
    n = max(1, min(n, len(words)))
    size, extra = divmod(len(words), n)
    chunks: list[str] = []
    start = 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        chunks.append((" " if i else "") + " ".join(words[start:end]))
        start = end
    return chunks


def split_text(text: str, n: int) -> list[str]:
    """``text`` in ``n`` (or fewer, if short) non-empty character slices."""
    n = max(1, min(n, len(text)))
    step = -(-len(text) // n)
    return [text[i : i + step] for i in range(0, len(text), step)]


def tool_names(fmt: str, body: Mapping[str, Any]) -> list[str]:
    tools = body.get("tools")
    if not isinstance(tools, list) or body.get("tool_choice") == "none":
        return []
    names: list[str] = []
    for tool in tools:
        if isinstance(tool, Mapping):
            fn = tool.get("function") if fmt == "chat" else tool
            if isinstance(fn, Mapping) and isinstance(fn.get("name"), str):
                names.append(fn["name"])
    return names


def max_output(fmt: str, body: Mapping[str, Any]) -> int | None:
    keys = {"responses": ("max_output_tokens",), "chat": ("max_completion_tokens", "max_tokens")}
    for key in keys.get(fmt, ("max_tokens",)):
        value = body.get(key)
        if isinstance(value, int) and value > 0:
            return value
    return None


def plan_reply(
    *,
    flavour: str,
    fmt: str,
    body: Mapping[str, Any],
    seq: int,
    ident: str,
    created: int,
    scenarios: set[str],
    chunks: int | None,
    response_model: str | None,
    provider: str,
) -> Reply:
    texts, last_user = prompt_texts(fmt, body)
    prompt_tokens = max(1, count_words(texts))
    words = ["Echo:", *last_user.split()]
    if chunks is not None and chunks > len(words):
        # Long streams are asked for by chunk count; pad so every chunk carries a word.
        words += ["lorem"] * (chunks - len(words))
    finish = "stop"
    limit = max_output(fmt, body)
    if limit is not None and limit < len(words):
        words, finish = words[:limit], "length"
    text = " ".join(words)
    pieces = split_even(words, chunks if chunks is not None else DEFAULT_MAX_CHUNKS)
    output_tokens = len(words)

    tool = None
    names = tool_names(fmt, body)
    if names:
        arguments = json.dumps({"query": last_user, "echo": True})
        tool = ToolCall(f"call_fake{seq:06d}", names[0], arguments, split_text(arguments, 4))
        text, pieces, finish = "", [], "tool_calls"
        output_tokens = len(arguments.split())

    reasoning = "reasoning" in scenarios
    reasoning_tokens = len(REASONING_TEXT.split()) if reasoning else 0
    cache = "cache" in scenarios
    return Reply(
        flavour=flavour,
        ident=ident,
        seq=seq,
        created=created,
        model=response_model or str(body.get("model") or "fake-model"),
        provider=provider,
        text=text,
        chunks=pieces,
        tool=tool,
        finish=finish,
        prompt_tokens=prompt_tokens,
        completion_tokens=output_tokens + reasoning_tokens,
        reasoning_tokens=reasoning_tokens,
        reasoning_chunks=split_even(REASONING_TEXT.split(), 3) if reasoning else [],
        cached_tokens=prompt_tokens // 2 if cache else 0,
        cache_write_tokens=prompt_tokens // 4 if cache else 0,
    )
