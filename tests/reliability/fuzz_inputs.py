"""Hypothesis strategies for the fuzz properties: JSON shaped like what our parsers read.

Purely random JSON almost never has a ``choices[0].delta.tool_calls`` path, so dict keys are
drawn mostly from the string constants of ``or_middleware/genai`` itself (read with ``ast``):
a field a parser starts to read tomorrow is fuzzed tomorrow, without editing this file.
Values stay arbitrary (wrong types, NaN, huge numbers, deep nesting) — that is the point.
"""

from __future__ import annotations

import ast
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

import or_middleware.genai as genai_package

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")


@cache
def parser_vocabulary() -> tuple[str, ...]:
    """Every identifier-like string literal in the genai parsers (field names, event types, roles)."""
    words: set[str] = set()
    for path in sorted(Path(genai_package.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and _IDENT.match(node.value):
                words.add(node.value)
    return tuple(sorted(words))


def keys() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(parser_vocabulary()), st.text(max_size=6))


def scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),  # unbounded: token counts of 10**30 must not break an exporter
        st.sampled_from([2**63, -(2**63) - 1, 2**64, 10**30, 1e300, -0.0]),
        st.floats(),  # NaN and infinities too: Python's json reads them
        st.sampled_from(parser_vocabulary()),
        st.text(max_size=20),
        # "\ud83d" alone: a JS client cut an emoji in half; JSON carries it as an escape
        st.sampled_from(["\ud83d", "a\udfffb", "\x00", "\u2028"]),
    )


def json_values(max_leaves: int = 40) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars(),
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(keys(), children, max_size=6),
        ),
        max_leaves=max_leaves,
    )


def json_objects(max_leaves: int = 40) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(keys(), json_values(max_leaves), max_size=8)


def event_names() -> st.SearchStrategy[str | None]:
    return st.one_of(st.none(), st.sampled_from(parser_vocabulary()), st.text(max_size=8))


def event_data() -> st.SearchStrategy[str]:
    """What a ``data:`` field carries: JSON (mostly), [DONE], or anything."""
    return st.one_of(
        json_objects().map(lambda v: json.dumps(v, allow_nan=True)),
        json_values().map(lambda v: json.dumps(v, allow_nan=True)),
        st.just("[DONE]"),
        st.text(max_size=30),
    )


def otel_attribute_problems(attributes: dict[str, Any]) -> list[str]:
    """What an OTLP exporter would reject or OpenTelemetry would drop: values that are not
    str/bool/int/float (or homogeneous lists of them), ints outside int64, non-str keys."""
    problems = []
    for key, value in attributes.items():
        if not isinstance(key, str) or not key:
            problems.append(f"key {key!r}")
        values = value if isinstance(value, list | tuple) else [value]
        kinds = {type(v) for v in values}
        if len(kinds) > 1:
            problems.append(f"{key}: mixed list {value!r}")
        for v in values:
            if not isinstance(v, str | bool | int | float):
                problems.append(f"{key}: {type(v).__name__} value")
            elif isinstance(v, int) and not isinstance(v, bool) and not -(2**63) <= v < 2**63:
                problems.append(f"{key}: int {v} outside int64")
            elif isinstance(v, str):
                try:
                    v.encode("utf-8")
                except UnicodeEncodeError:
                    problems.append(f"{key}: string not encodable as UTF-8")
    return problems
