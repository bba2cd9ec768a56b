"""Fuzzing the pure parsers: the SSE decoder, every wire format, the ResponseObserver, the span contract.

Properties:
- the SSE decoder agrees with a plain one-shot reading of the spec, however the bytes are cut;
- no wire-format reader raises on any JSON value, in any field (read_request / read_response /
  read_error / stream events, then on_end or finalize), content capture on or off;
- the ResponseObserver never raises, whatever the bytes, encoding, status and chunking;
- the attributes the span contract makes from any record are values every exporter can encode.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from or_middleware import spans
from or_middleware.genai.formats import WireFormat
from or_middleware.genai.record import GenerationRecord
from or_middleware.genai.registry import CHAT, EMBEDDINGS, MESSAGES, RESPONSES, TEXT_COMPLETIONS
from or_middleware.genai.response import ResponseObserver
from or_middleware.genai.sse import ServerSentEvent, SSEDecoder
from tests.reliability.fuzz_inputs import (
    event_data,
    event_names,
    json_objects,
    json_values,
    otel_attribute_problems,
)

FORMATS: dict[str, WireFormat] = {
    "chat": CHAT,
    "completions": TEXT_COMPLETIONS,
    "responses": RESPONSES,
    "embeddings": EMBEDDINGS,
    "messages": MESSAGES,
}
formats = st.sampled_from(sorted(FORMATS))


def new_record(fmt: WireFormat, capture: bool) -> GenerationRecord:
    return GenerationRecord(provider="openrouter", operation=fmt.operation, capture_content=capture, started_at=1.0)


def assert_exportable(record: GenerationRecord) -> None:
    attributes = spans.record_attributes(record, 4096)
    assert not otel_attribute_problems(attributes), otel_attribute_problems(attributes)


def split(data: bytes, points: list[int]) -> list[bytes]:
    cuts = sorted({p % (len(data) + 1) for p in points})
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


cut_points = st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=12)


# --- SSE decoder ------------------------------------------------------------------------------

_TERMINATOR = re.compile(r"\r\n|\r|\n")


def reference_sse(data: bytes) -> list[ServerSentEvent]:
    """The WHATWG event-stream interpretation, read in one go (no incremental state)."""
    text = data.decode("utf-8", "replace").removeprefix("\ufeff")
    lines = _TERMINATOR.split(text)
    events: list[ServerSentEvent] = []
    buffer: list[str] = []
    event: str | None = None
    retry: int | None = None
    last_id: str | None = None
    for line in [*lines, ""]:  # end of stream dispatches what is pending (as our decoder's flush does)
        if not line:
            if buffer or event is not None:
                events.append(ServerSentEvent(event, "\n".join(buffer), last_id, retry))
            buffer, event, retry = [], None, None
            continue
        if line.startswith(":"):
            continue
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            buffer.append(value)
        elif name == "event":
            event = value
        elif name == "id" and "\0" not in value:
            last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            retry = int(value)
    return events


sse_lines = st.lists(
    st.tuples(
        st.sampled_from(["data", "event", "id", "retry", "", ":", "dat", "data ", "\ufeffdata"]),
        st.sampled_from([":", ": ", "", ":  "]),
        st.one_of(st.text(max_size=12), st.sampled_from(["[DONE]", "{}", "12", "a\0b", "1.5"])),
        st.sampled_from(["\n", "\r\n", "\r", "\n\n", "\r\n\r\n", "\r\r"]),
    ),
    max_size=20,
)


@given(
    lines=sse_lines,
    noise=st.lists(st.tuples(st.integers(0, 1 << 16), st.binary(min_size=1, max_size=3)), max_size=3),
    bom=st.booleans(),
    points=cut_points,
)
def test_fuzz_sse_decoder_matches_the_spec_for_any_cut(lines, noise, bom, points):
    stream = "".join(name + sep + value + end for name, sep, value, end in lines).encode()
    for at, junk in noise:  # invalid UTF-8 and stray bytes anywhere, even inside a character
        at %= len(stream) + 1
        stream = stream[:at] + junk + stream[at:]
    if bom:
        stream = b"\xef\xbb\xbf" + stream
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for piece in split(stream, points):
        events.extend(decoder.feed(piece))
    events.extend(decoder.flush())
    assert events == reference_sse(stream)
    assert not decoder.overflowed


@given(data=st.binary(max_size=600), limit=st.integers(1, 64), points=cut_points)
def test_fuzz_sse_decoder_is_bounded_and_never_raises(data, limit, points):
    decoder = SSEDecoder(max_event_chars=limit)
    events: list[ServerSentEvent] = []
    for piece in split(data, points):
        events.extend(decoder.feed(piece))
        assert decoder._pending_chars <= limit  # the unfinished line never outgrows the cap
    events.extend(decoder.flush())
    for event in events:
        assert len(event.data) <= limit


# --- wire formats -----------------------------------------------------------------------------


@given(name=formats, body=json_objects(), capture=st.booleans())
def test_fuzz_read_request_never_raises(name, body, capture):
    fmt = FORMATS[name]
    record = new_record(fmt, capture)
    fmt.read_request(body, record)
    assert_exportable(record)


@given(name=formats, body=json_values(), capture=st.booleans(), error=st.booleans())
def test_fuzz_read_response_and_error_never_raise(name, body, capture, error):
    fmt = FORMATS[name]
    record = new_record(fmt, capture)
    (fmt.read_error if error else fmt.read_response)(body, record)
    assert_exportable(record)


@given(
    name=formats,
    request=json_objects(max_leaves=15),
    events=st.lists(st.tuples(event_names(), event_data()), max_size=12),
    capture=st.booleans(),
    ending=st.sampled_from(["on_end", "finalize", "both"]),
    budget=st.integers(1, 200),
)
def test_fuzz_stream_readers_never_raise(name, request, events, capture, ending, budget):
    fmt = FORMATS[name]
    record = new_record(fmt, capture)
    fmt.read_request(request, record)
    reader = fmt.stream_reader(record, max_content_chars=budget)
    for i, (event, data) in enumerate(events):
        reader.on_event(event, data, 2.0 + i)
    if ending in ("finalize", "both"):
        reader.finalize()
    if ending in ("on_end", "both"):
        reader.on_end()
    assert_exportable(record)
    if record.time_to_first_chunk is not None:
        assert record.time_to_first_chunk >= 0


# --- the ResponseObserver: bytes in any shape -------------------------------------------------

CONTENT_TYPES = ["application/json", "text/event-stream", "text/event-stream; charset=utf-8",
                 "text/plain", "application/problem+json", None]
ENCODINGS = [None, "gzip", "deflate", "br", "zstd", "gzip, gzip", "identity", "compress", "x-gzip", ""]


def _encode(payload: bytes, encoding: str | None, how: str) -> bytes:
    """The payload encoded as ``encoding`` says (``how == "valid"``), or left as garbage."""
    if how != "valid" or not encoding:
        return payload
    if encoding in ("gzip", "x-gzip"):
        return gzip.compress(payload)
    if encoding == "gzip, gzip":
        return gzip.compress(gzip.compress(payload))
    if encoding == "deflate":
        return zlib.compress(payload)
    if encoding == "br":
        import brotli

        return brotli.compress(payload)
    if encoding == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(payload)
    return payload


def sse_body(events: list[tuple[str | None, str]]) -> bytes:
    out = []
    for event, data in events:
        if event is not None:
            out.append("event: " + _TERMINATOR.sub("", event) + "\n")
        out.extend(f"data: {line}\n" for line in _TERMINATOR.split(data))
        out.append("\n")
    return "".join(out).encode("utf-8", "surrogatepass")


@given(
    name=formats,
    status=st.sampled_from([200, 201, 204, 301, 400, 404, 429, 500, 503]),
    content_type=st.sampled_from(CONTENT_TYPES),
    encoding=st.sampled_from(ENCODINGS),
    how=st.sampled_from(["valid", "garbage"]),
    payload=st.one_of(
        st.binary(max_size=300),
        json_values().map(lambda v: json.dumps(v).encode("utf-8", "surrogatepass")),
        st.lists(st.tuples(event_names(), event_data()), max_size=8).map(sse_body),
    ),
    stream_requested=st.booleans(),
    capture=st.booleans(),
    points=cut_points,
    end=st.sampled_from(["finish", "abandon", "abandon_error", "finish_then_abandon"]),
    max_json=st.sampled_from([16, 1024, 1 << 20]),
)
def test_fuzz_response_observer_never_raises(
    name, status, content_type, encoding, how, payload, stream_requested, capture, points, end, max_json
):
    fmt = FORMATS[name]
    record = new_record(fmt, capture)
    record.stream = stream_requested
    observer = ResponseObserver(fmt, record, status_code=status, content_type=content_type,
                                content_encoding=encoding, max_json_bytes=max_json, max_decoded_bytes=1 << 16)
    for i, piece in enumerate(split(_encode(payload, encoding, how), points)):
        observer.feed(piece, 2.0 + i)
    if end == "finish":
        observer.finish(99.0)
    elif end == "abandon":
        observer.abandon(99.0)
    elif end == "abandon_error":
        observer.abandon(99.0, error_type="ReadError", message="boom")
    else:
        observer.finish(99.0)
        observer.abandon(100.0)
    assert record.status_code == status
    if status >= 400:
        assert record.error_type is not None  # an error status is never reported as a success
    assert_exportable(record)


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_fuzz_inputs_reach_the_parsers_fields(name):
    """Guard for the strategy: the vocabulary holds the fields each format reads, so the
    fuzzers above reach deep paths rather than bouncing off the first type check."""
    from tests.reliability.fuzz_inputs import parser_vocabulary

    vocabulary = set(parser_vocabulary())
    expected = {"chat": {"choices", "delta", "tool_calls", "usage"}, "completions": {"choices", "text"},
                "responses": {"response.output_text.delta", "output"}, "embeddings": {"data", "embedding"},
                "messages": {"content_block_delta", "message_start", "usage"}}[name]
    assert expected <= vocabulary


def _roundtrip_samples() -> list[Any]:
    return [{"usage": {"prompt_tokens": 10**30}}, {"usage": {"prompt_tokens": 1e300}}, {"model": "\ud83d"}]


@pytest.mark.parametrize("body", _roundtrip_samples())
def test_wire_values_no_exporter_can_encode_never_reach_a_span(body):
    """Regression: found by the fuzzers above (ints outside int64, lone surrogates)."""
    for fmt in FORMATS.values():
        record = new_record(fmt, True)
        fmt.read_request(body, record)
        fmt.read_response(body, record)
        assert_exportable(record)
