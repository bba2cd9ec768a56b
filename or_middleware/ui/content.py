"""Stored content (semconv JSON messages) made readable: roles and parts, or the raw text when it is
not JSON (a capped value cut mid-way). Only ever called on what the store holds: no content, no text."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

REPLAY_PART_CHARS = 4000  # of each message part in a session's replay (the generation's page shows it all)


@dataclass
class Part:
    kind: str  # text | tool_call | tool_call_response | other
    text: str
    name: str | None = None  # the tool's name, for tool calls

    def shortened(self, limit: int = REPLAY_PART_CHARS) -> Part:
        if len(self.text) <= limit:
            return self
        return Part(self.kind, f"{self.text[:limit]}… ({len(self.text) - limit:,} more characters)", self.name)


@dataclass
class Message:
    role: str
    parts: list[Part] = field(default_factory=list)


@dataclass
class Content:
    messages: list[Message]
    raw: str | None = None  # set when the stored value could not be read as messages


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=1)


def _part(part: Any) -> Part:
    if not isinstance(part, Mapping):
        return Part("other", _text(part))
    kind = part.get("type")
    if kind == "text" or kind == "reasoning":
        return Part(str(kind), _text(part.get("content", "")))
    if kind == "tool_call":
        return Part("tool_call", _text(part.get("arguments", "")), str(part.get("name", "")))
    if kind == "tool_call_response":
        return Part("tool_call_response", _text(part.get("response", "")), str(part.get("id", "")))
    return Part("other", _text(dict(part)))


def _message(item: Any, default_role: str) -> Message:
    if isinstance(item, Mapping) and "parts" in item:
        parts = item.get("parts")
        return Message(str(item.get("role", default_role)),
                       [_part(p) for p in parts] if isinstance(parts, Sequence) and not isinstance(parts, str)
                       else [Part("other", _text(parts))])
    if isinstance(item, Mapping) and "type" in item:  # system instructions: a list of parts
        return Message(default_role, [_part(item)])
    return Message(default_role, [Part("other", _text(item))])


def messages(stored: str | None, default_role: str = "system") -> Content | None:
    if stored is None:
        return None
    try:
        value = json.loads(stored)
    except ValueError:
        return Content([], raw=stored)
    if not isinstance(value, list):
        return Content([], raw=_text(value))
    found = [_message(item, default_role) for item in value]
    if found and all(m.role == default_role and len(m.parts) == 1 for m in found) and default_role == "system":
        return Content([Message("system", [p for m in found for p in m.parts])])
    return Content(found)


@dataclass
class Turn:
    """One call of a session as a step of the conversation: what was new in its input, and its answer."""

    call: dict[str, Any]
    new_input: list[Message]
    output: list[Message]


def conversation(calls: Sequence[dict[str, Any]]) -> list[Turn] | None:
    """The session's calls as a conversation, when content was captured (None otherwise).

    A chat app resends the history each turn; each turn shows only the input messages that the
    previous call's input and answer did not already hold.
    """
    if not any(c.get("input_messages") or c.get("output_messages") for c in calls):
        return None
    turns, seen = [], 0
    for call in calls:
        given = messages(call.get("input_messages"), "user")
        answer = messages(call.get("output_messages"), "assistant")
        given_messages = given.messages if given else []
        new = given_messages[seen:] if len(given_messages) > seen else given_messages[-1:]
        turns.append(Turn(call, _shortened(new), _shortened(answer.messages if answer else [])))
        seen = len(given_messages) + (len(answer.messages) if answer else 0)
    return turns


def _shortened(found: list[Message]) -> list[Message]:
    return [Message(m.role, [p.shortened() for p in m.parts]) for m in found]
