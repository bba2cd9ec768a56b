"""A content attribute cut by OR_MIDDLEWARE_MAX_CONTENT_BYTES is still valid JSON of the same shape."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from or_middleware.spans import TRUNCATION_MARKER, _capped_json

LEAF = st.one_of(st.text(max_size=300), st.integers(), st.none(), st.booleans())
TREE = st.recursive(
    LEAF, lambda c: st.one_of(st.lists(c, max_size=8), st.dictionaries(st.text(max_size=5), c, max_size=5)),
    max_leaves=60,
)


@settings(max_examples=300, deadline=None)
@given(TREE, st.integers(min_value=40, max_value=3000))
def test_any_capped_value_is_valid_json_within_the_cap(value, cap):
    out = _capped_json(value, cap)
    json.loads(out)
    assert len(out) <= cap


def test_messages_keep_their_shape_and_the_long_part_is_marked():
    messages = [
        {"role": "user", "parts": [{"type": "text", "content": "line\n" * 40_000}]},
        {"role": "assistant", "parts": [{"type": "text", "content": "short answer"}]},
    ]
    out = json.loads(_capped_json(messages, 65_536))
    assert [m["role"] for m in out] == ["user", "assistant"]
    assert out[0]["parts"][0]["content"].endswith(TRUNCATION_MARKER)
    assert out[1]["parts"][0]["content"] == "short answer"
