"""What a request body asks: its prompt fields, their fingerprint, and their text.

Format-agnostic on purpose: every wire format we read keeps its prompt under one of a few
top-level keys (chat ``messages``; Anthropic ``system`` + ``messages``; Responses
``instructions`` + ``input``; legacy completions ``prompt``; embeddings ``input``).
:func:`prompt_fields` only picks references out of the already-parsed body, so it costs
nothing on the request path; the text walks below run on the exporter side.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

PromptFields = dict[str, Any]

PROMPT_KEYS = ("system", "instructions", "messages", "prompt", "input")
# Keys under which a message or content block keeps text (not ids, types, URLs or image data).
_TEXT_KEYS = ("content", "text", "output", "input", "prompt")
# Roles whose text the app's developer wrote (or the model did), not the caller.
_NOT_CALLER_ROLES = frozenset({"system", "developer", "assistant", "model"})
_TURN_BOUNDARY_ROLES = frozenset({"assistant", "model"})


def prompt_fields(body: Mapping[str, Any]) -> PromptFields | None:
    """The prompt-bearing values of a request body (references, no copies), or None if it has none."""
    fields = {key: body[key] for key in PROMPT_KEYS if body.get(key) not in (None, "", [])}
    return fields or None


# json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str), made once
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def prompt_sha256(fields: PromptFields) -> str:
    """Hex SHA-256 of the prompt as canonical JSON: the same prompt gives the same hash whatever
    the model, parameters, key order or SDK that sent it."""
    return hashlib.sha256(_CANONICAL.encode(fields).encode("utf-8", "surrogatepass")).hexdigest()


def _texts(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from _texts(item)
    elif isinstance(node, dict | Mapping):  # a parsed body holds dicts: the ABC check only for others
        for key in _TEXT_KEYS:
            if key in node:
                yield from _texts(node[key])


def prompt_chars(fields: PromptFields) -> int:
    """Characters of prompt text (system, messages, tool results), ignoring images and ids."""
    return sum(len(text) for value in fields.values() for text in _texts(value))


def _turn_items(items: list[Any]) -> list[Any]:
    """The items after the last assistant message: what this call adds to the conversation."""
    start = 0
    for index, item in enumerate(items):
        if isinstance(item, Mapping) and item.get("role") in _TURN_BOUNDARY_ROLES:
            start = index + 1
    return items[start:]


def caller_turn_texts(fields: PromptFields) -> Iterator[str]:
    """Text the caller (user, tool results, retrieved documents) added in this call.

    System and developer instructions are the app's own words, and earlier turns were
    already seen by the call that sent them: scanning only the new turn means one injected
    message is flagged once, not again on every later turn of the same conversation.
    """
    for key in ("messages", "input", "prompt"):
        value = fields.get(key)
        if isinstance(value, list):
            for item in _turn_items(value):
                if isinstance(item, Mapping) and item.get("role") in _NOT_CALLER_ROLES:
                    continue
                yield from _texts(item)
        elif isinstance(value, str):
            yield value
