"""NDJSON and JSON-array stream framings: any split, escapes and brackets inside strings, bounds."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from or_middleware.genai.framing import JSONArrayDecoder, NDJSONDecoder

# JSON values whose strings hold the characters a naive scanner trips on.
TRICKY_TEXT = st.text(alphabet=st.sampled_from(list('ab{}[]",\\:\n\r\t é😀')), max_size=20)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | TRICKY_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TRICKY_TEXT, inner, max_size=3),
    max_leaves=12,
)
ELEMENTS = st.lists(st.dictionaries(TRICKY_TEXT, VALUES, max_size=4) | st.lists(VALUES, max_size=3), max_size=6)


def feed(decoder, raw: bytes, points: list[int]) -> list:
    bounds = sorted({p % (len(raw) + 1) for p in points})
    events = []
    for a, b in zip([0, *bounds], [*bounds, len(raw)], strict=True):
        events += decoder.feed(raw[a:b])
    return events + decoder.flush()


@settings(max_examples=300, deadline=None)
@given(elements=ELEMENTS, points=st.lists(st.integers(min_value=0, max_value=1 << 16), max_size=12),
       separator=st.sampled_from([",", ",\r\n", " , ", ",\n"]))
def test_json_array_elements_come_out_whole_under_any_split(elements, points, separator):
    raw = ("[" + separator.join(json.dumps(e, ensure_ascii=False) for e in elements) + "]").encode()
    events = feed(JSONArrayDecoder(), raw, points)
    assert [json.loads(e.data) for e in events] == elements


@settings(max_examples=200, deadline=None)
@given(elements=ELEMENTS, points=st.lists(st.integers(min_value=0, max_value=1 << 16), max_size=12),
       newline=st.sampled_from(["\n", "\r\n"]))
def test_ndjson_lines_come_out_whole_under_any_split(elements, points, newline):
    raw = "".join(json.dumps(e) + newline for e in elements).encode()
    events = feed(NDJSONDecoder(), raw, points)
    assert [json.loads(e.data) for e in events] == elements


def test_a_body_that_is_not_an_array_comes_out_whole_at_the_end():
    decoder = JSONArrayDecoder()
    assert decoder.feed(b'  {"error": {"code": 400, "status": "INVALID_ARGUMENT"}}') == []
    [event] = decoder.flush()
    assert json.loads(event.data)["error"]["code"] == 400


def test_oversized_elements_and_lines_are_dropped_and_memory_stays_bounded():
    decoder = JSONArrayDecoder(max_event_chars=100)
    events = decoder.feed(b'[{"a": "' + b"x" * 10_000 + b'"}, {"b": 1}]')
    assert decoder.overflowed and [json.loads(e.data) for e in events] == [{"b": 1}]
    assert len(decoder._pending) == 0
    lines = NDJSONDecoder(max_event_chars=100)
    events = []
    for _ in range(1000):  # one endless line, a chunk at a time
        events += lines.feed(b"y" * 100)
        assert len(lines._pending) <= 200
    events += lines.feed(b'\n{"ok": true}\n')
    assert lines.overflowed and [json.loads(e.data) for e in events] == [{"ok": True}]


def test_deep_nesting_is_linear_and_bounded():
    decoder = JSONArrayDecoder(max_event_chars=1 << 20)
    raw = b"[" + b"[" * 200_000 + b"]" * 200_000 + b"]"
    events = feed(decoder, raw, list(range(0, len(raw), 4096)))
    assert len(events) == 1 and len(events[0].data) == 400_000
