"""Typed reads of untrusted JSON values.

Upstream bodies are whatever the server sent: a field documented as an integer may be a
float, a string, a bool or missing. These helpers return a value of the right type or None,
so readers never raise on odd input and never record a bool as a token count.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["as_dict", "as_float", "as_int", "as_list", "as_str", "get_path", "is_model", "to_text"]


def as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def as_float(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
        return number if number == number and abs(number) != float("inf") else None
    return None


def as_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def as_dict(value: object) -> Mapping[str, Any]:
    # The exact-type test first: JSON gives dicts, and it is far cheaper than the ABC check.
    return value if type(value) is dict or isinstance(value, Mapping) else {}


def as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def get_path(value: object, *keys: str) -> Any:
    """``get_path(body, "usage", "prompt_tokens_details", "cached_tokens")`` or None."""
    for key in keys:
        if type(value) is not dict and not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def to_text(value: object) -> str:
    """A metadata value as a string attribute: strings as they are, anything else as JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    except (TypeError, ValueError):  # e.g. circular structures cannot come from JSON, but be safe
        return str(value)


def is_model(body: Mapping[str, Any], key: str = "model") -> bool:
    """A request names its model: the first half of every API's shape check."""
    model = body.get(key)
    return isinstance(model, str) and bool(model.strip())
