from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from or_middleware.genai.sse import ServerSentEvent, SSEDecoder


def decode(*chunks: bytes, **options: int) -> list[ServerSentEvent]:
    decoder = SSEDecoder(**options)
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.flush())
    return events


def datas(events: list[ServerSentEvent]) -> list[str]:
    return [event.data for event in events]


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending(eol: bytes) -> None:
    stream = b"data: one" + eol + eol + b"data: two" + eol + b"data: lines" + eol + eol
    assert datas(decode(stream)) == ["one", "two\nlines"]


def test_crlf_split_between_chunks_is_one_line_end() -> None:
    # If the "\n" after a chunk-final "\r" were taken as a second line end, it would be a
    # blank line and dispatch "a" alone, before "b" arrives.
    events = decode(b"data: a\r", b"\ndata: b\r\n\r\n")
    assert datas(events) == ["a\nb"]


def test_cr_at_chunk_end_then_blank_line() -> None:
    assert datas(decode(b"data: x\r", b"\r", b"data: y\r\r")) == ["x", "y"]


def test_utf8_split_inside_a_character() -> None:
    payload = "data: café ☕ 👋\n\n".encode()
    cut = payload.index("👋".encode()) + 2  # in the middle of the 4-byte emoji
    assert datas(decode(payload[:cut], payload[cut:])) == ["café ☕ 👋"]


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert datas(decode(b"data: a\xffb\n\n")) == ["a\ufffdb"]


def test_fields_event_id_retry() -> None:
    events = decode(b"event: message_start\nid: 7\nretry: 1500\ndata: {}\n\ndata: next\n\n")
    assert events[0] == ServerSentEvent("message_start", "{}", "7", 1500)
    # The last event id persists; event name and retry do not.
    assert events[1] == ServerSentEvent(None, "next", "7", None)


def test_invalid_retry_and_nul_id_ignored() -> None:
    [event] = decode(b"id: a\0b\nretry: 10s\ndata: x\n\n")
    assert event.id is None
    assert event.retry is None


def test_comments_are_not_events() -> None:
    events = decode(b": OPENROUTER PROCESSING\n\n: OPENROUTER PROCESSING\n\ndata: real\n\n")
    assert datas(events) == ["real"]


def test_field_without_colon_and_only_one_leading_space_stripped() -> None:
    events = decode(b"data\n\ndata:  two spaces\ndata:no space\n\n")
    assert datas(events) == ["", " two spaces\nno space"]


def test_unknown_fields_ignored_and_id_only_block_is_not_an_event() -> None:
    assert decode(b"foo: bar\nid: 1\n\nretry: 5\n\n") == []


def test_event_name_without_data_is_kept() -> None:
    assert decode(b"event: ping\n\n") == [ServerSentEvent("ping", "", None, None)]


def test_missing_final_blank_line_flushes_last_event() -> None:
    assert datas(decode(b"data: a\n\ndata: last")) == ["a", "last"]
    assert datas(decode(b"data: a\n\ndata: last\r")) == ["a", "last"]


def test_leading_bom_is_stripped_once() -> None:
    assert datas(decode(b"\xef\xbb\xbfdata: x\n\n")) == ["x"]


def test_feed_returns_events_as_soon_as_complete() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n") == []
    assert datas(decoder.feed(b"\ndata: b")) == ["a"]
    assert datas(decoder.flush()) == ["b"]


def test_unicode_line_separators_inside_data_are_not_line_ends() -> None:
    # str.splitlines() would split here; SSE only knows \r and \n.
    text = 'data: {"t": "a\u2028b\x1cc\x85d"}\n\n'
    assert datas(decode(text.encode())) == ['{"t": "a\u2028b\x1cc\x85d"}']


def test_oversized_line_dropped_and_flagged_then_recovers() -> None:
    decoder = SSEDecoder(max_event_chars=100)
    events = decoder.feed(b"data: " + b"x" * 60)
    events += decoder.feed(b"y" * 60)  # the pending line passes the cap here
    events += decoder.feed(b"z" * 1000 + b"\n\ndata: ok\n\n")
    assert decoder.overflowed
    assert datas(events) == ["ok"]


def test_oversized_event_across_many_lines_dropped() -> None:
    decoder = SSEDecoder(max_event_chars=100)
    events = decoder.feed(b"data: 0123456789012345678901234567890123456789\n" * 5 + b"\ndata: ok\n\n")
    assert decoder.overflowed
    assert datas(events) == ["ok"]


def test_long_line_in_tiny_chunks_is_linear_time() -> None:
    # Quadratic rescanning of the pending line would take seconds here.
    chunks = [b"data: "] + [b"a" * 16] * 100_000 + [b"\n\n"]
    start = time.perf_counter()
    [event] = decode(*chunks)
    assert len(event.data) == 1_600_000
    assert time.perf_counter() - start < 2.0


_LINE = st.one_of(
    st.builds(
        lambda v: f"data: {v}",
        st.text(alphabet=st.characters(exclude_characters="\r\n", exclude_categories=("Cs",)), max_size=8),
    ),
    st.builds(lambda v: f"event: {v}", st.sampled_from(["a", "message_delta", ""])),
    st.builds(lambda v: f"id: {v}", st.integers(0, 99)),
    st.just(": comment"),
    st.just(""),
)


@settings(max_examples=100, deadline=None)
@given(
    lines=st.lists(_LINE, max_size=12),
    eol=st.sampled_from(["\n", "\r\n", "\r"]),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8),
)
def test_any_split_gives_the_same_events(lines: list[str], eol: str, cuts: list[int]) -> None:
    raw = eol.join(lines).encode()
    whole = decode(raw)
    bounds = sorted({c % (len(raw) + 1) for c in cuts})
    pieces = [raw[a:b] for a, b in zip([0, *bounds], [*bounds, len(raw)], strict=True)]
    assert decode(*pieces) == whole
