"""Content attributes read back for the platforms that want chat messages (pure, no I/O).

The span carries content as semconv JSON (``{"role", "parts": [...]}``); OpenInference,
LangSmith and PostHog show ``{"role", "content", "tool_calls"}`` chat messages. A content
attribute cut at ``MAX_CONTENT_BYTES`` is no longer valid JSON: it is then passed on as text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

ChatMessage = dict[str, Any]


def load_json(value: Any) -> Any:
    """The decoded JSON of a content attribute, or None when absent or not JSON (truncated)."""
    if not isinstance(value, str):
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None


def _text(parts: Any) -> str:
    if isinstance(parts, str):
        return parts
    texts = []
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, dict) or part.get("type") not in ("text", "reasoning"):
            continue
        if isinstance(part.get("content"), str):
            texts.append(part["content"])
    return "\n".join(texts)


def _arguments_text(arguments: Any) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)


def chat_message(message: Mapping[str, Any]) -> ChatMessage:
    """One semconv message as a chat message; tool calls and tool results are kept."""
    parts = message.get("parts")
    out: ChatMessage = {"role": message.get("role") or "user", "content": _text(parts)}
    calls = []
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "tool_call":
            calls.append({"id": part.get("id"), "name": part.get("name"),
                          "arguments": _arguments_text(part.get("arguments", {}))})
        elif part.get("type") == "tool_call_response":
            out["tool_call_id"] = part.get("id")
            response = part.get("response")
            out["content"] = response if isinstance(response, str) else json.dumps(response, ensure_ascii=False)
    if calls:
        out["tool_calls"] = calls
    return out


def input_chat_messages(attributes: Mapping[str, Any]) -> list[ChatMessage] | None:
    """System instructions and input messages as chat messages; None when there is no content."""
    system = load_json(attributes.get(gen_ai.GEN_AI_SYSTEM_INSTRUCTIONS))
    messages = load_json(attributes.get(gen_ai.GEN_AI_INPUT_MESSAGES))
    if system is None and messages is None:
        return None
    out: list[ChatMessage] = []
    if system is not None:
        out.append({"role": "system", "content": _text(system)})
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, dict):
            out.append(chat_message(message))
    return out


def output_chat_messages(attributes: Mapping[str, Any]) -> list[ChatMessage] | None:
    messages = load_json(attributes.get(gen_ai.GEN_AI_OUTPUT_MESSAGES))
    if not isinstance(messages, list):
        return None
    return [chat_message(m) for m in messages if isinstance(m, dict)]


def content_text(attributes: Mapping[str, Any], key: str) -> str | None:
    """A content attribute as text: its JSON as is, or the truncated text when it no longer parses."""
    value = attributes.get(key)
    return value if isinstance(value, str) and value else None
