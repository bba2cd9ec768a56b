"""Message content in the OpenTelemetry GenAI semconv shape, and bounded text accumulation.

Semconv messages are ``{"role": ..., "parts": [...]}`` with parts such as
``{"type": "text", "content": ...}``, ``{"type": "tool_call", "id", "name", "arguments"}``,
``{"type": "tool_call_response", "id", "response"}`` and ``{"type": "reasoning", "content"}``.
"""

from __future__ import annotations

import json
from typing import Any

from or_middleware.genai.record import Message

__all__ = [
    "DEFAULT_MAX_CONTENT_CHARS",
    "TRUNCATION_MARKER",
    "CappedText",
    "ContentBudget",
    "message",
    "parse_arguments",
    "reasoning_part",
    "text_part",
    "tool_call_part",
]

DEFAULT_MAX_CONTENT_CHARS = 64 * 1024
TRUNCATION_MARKER = "…[truncated]"


class ContentBudget:
    """Characters a stream reader may still keep, shared by every text it reassembles.

    One budget per response bounds memory however many choices or tool calls a stream opens.
    """

    __slots__ = ("remaining",)

    def __init__(self, limit: int = DEFAULT_MAX_CONTENT_CHARS) -> None:
        self.remaining = max(0, limit)

    def take(self, wanted: int) -> int:
        granted = min(wanted, self.remaining)
        self.remaining -= granted
        return granted


class CappedText:
    """Appends pieces until the budget runs out, then remembers that it was cut."""

    __slots__ = ("_budget", "_parts", "truncated")

    def __init__(self, budget: ContentBudget) -> None:
        self._budget = budget
        self._parts: list[str] = []
        self.truncated = False

    def append(self, piece: str) -> None:
        if self.truncated or not piece:
            return
        granted = self._budget.take(len(piece))
        if granted < len(piece):
            self.truncated = True
            piece = piece[:granted]
        if piece:
            self._parts.append(piece)

    def __bool__(self) -> bool:
        return bool(self._parts) or self.truncated

    def value(self) -> str:
        text = "".join(self._parts)
        # Join once and keep the joined string, so repeated reads stay cheap.
        self._parts = [text] if text else []
        return text + TRUNCATION_MARKER if self.truncated else text


def text_part(content: str) -> dict[str, Any]:
    return {"type": "text", "content": content}


def reasoning_part(content: str) -> dict[str, Any]:
    return {"type": "reasoning", "content": content}


def parse_arguments(arguments: object) -> object:
    """Tool-call arguments as a JSON value when they parse, else the raw string.

    OpenAI sends arguments as a JSON-encoded string; semconv prefers the object itself.
    A cut-off or malformed string is kept verbatim so nothing the model said is lost.
    """
    if isinstance(arguments, str):
        stripped = arguments.strip()
        if stripped[:1] in ("{", "["):
            try:
                return json.loads(stripped)
            except ValueError:
                return arguments
    return arguments


def tool_call_part(call_id: object, name: object, arguments: object) -> dict[str, Any]:
    part: dict[str, Any] = {"type": "tool_call", "id": call_id if isinstance(call_id, str) else None}
    part["name"] = name if isinstance(name, str) else None
    if arguments is not None and arguments != "":
        part["arguments"] = parse_arguments(arguments)
    return part


def message(role: str, parts: list[dict[str, Any]], **extra: Any) -> Message:
    msg: Message = {"role": role, "parts": parts}
    msg.update({key: value for key, value in extra.items() if value is not None})
    return msg
