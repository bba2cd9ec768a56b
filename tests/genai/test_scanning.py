"""The byte-level fast path (genai/scanning.py) gives the record the exact path gives.

Reference: the framing decoder and the reader's ``on_event`` for every event (the exact path,
with its per-event lazy checks). Subject: the response observer, which holds chunks once the
reader skips and counts runs of routine events from their bytes. Streams are fixtures made long
(a routine event repeated), and hostile streams: fake markers in content, facts mid-stream,
unusual SSE spellings, line endings, garbage; each cut into chunks in many ways.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re

import pytest

from or_middleware.genai.framing import decoder_for_framing
from or_middleware.genai.record import GenerationRecord
from or_middleware.genai.registry import format_for
from or_middleware.genai.response import ResponseObserver
from or_middleware.genai.scanning import BATCH_BUDGET, CHUNK_OVERHEAD
from or_middleware.genai.sse import SSEDecoder
from or_middleware.genai.stream import EventStreamReader
from tests.genai.genai_testing import fixture_bytes

CHAT = format_for("openai", "/v1/chat/completions")
TIMING = frozenset({"started_at", "time_to_first_chunk"})


def exact(fmt, raw: bytes, framing: str = "sse") -> dict:  # type: ignore[no-untyped-def]
    """The record of the exact path: every event decoded and handed to the reader."""
    record = GenerationRecord(provider="openai", operation=fmt.operation, stream=True, status_code=200)
    reader = fmt.stream_reader(record)
    decoder = SSEDecoder() if framing == "sse" else decoder_for_framing(framing)
    for event in [*decoder.feed(raw), *decoder.flush()]:
        reader.on_event(event.event, event.data, 1.0)
    reader.on_end()
    return comparable(record)


def observed(fmt, chunks: list[bytes], content_type: str = "text/event-stream") -> dict:  # type: ignore[no-untyped-def]
    record = GenerationRecord(provider="openai", operation=fmt.operation, stream=True)
    observer = ResponseObserver(fmt, record, status_code=200, content_type=content_type)
    for chunk in chunks:
        observer.feed(chunk, 1.0)
    observer.finish(2.0)
    return comparable(record)


def comparable(record: GenerationRecord) -> dict:
    return {k: v for k, v in dataclasses.asdict(record).items() if k not in TIMING}


def events_of(raw: bytes) -> list[bytes]:
    return [piece for piece in re.split(rb"(?<=\n\n)|(?<=\r\n\r\n)", raw) if piece]


def cuttings(raw: bytes, seed: int = 0) -> list[list[bytes]]:
    """Whole, one event per chunk, 1-byte chunks, and random cuts."""
    rng = random.Random(seed)
    out = [[raw], events_of(raw), [raw[i : i + 1] for i in range(len(raw))]]
    for _ in range(4):
        points = sorted(rng.sample(range(1, len(raw)), min(len(raw) - 1, rng.randint(1, 60))))
        out.append([raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)])
    return out


def chat_event(content: str = "x", **fields) -> bytes:  # type: ignore[no-untyped-def]
    choice = {"index": 0, "delta": {"content": content}, "finish_reason": None}
    choice.update(fields.pop("choice", {}))
    body = {"id": "c1", "object": "chat.completion.chunk", "model": "m", "choices": [choice], "usage": None}
    body.update(fields)
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def chat_stream(middle: list[bytes], routine: int = 40) -> bytes:
    head = [chat_event("", choice={"delta": {"role": "assistant", "content": ""}}), chat_event("Hi")]
    body = [chat_event(f" w{i}") for i in range(routine)]
    half = len(body) // 2
    tail = [
        chat_event("", choice={"delta": {}, "finish_reason": "stop"}),
        chat_event("", choices=[], usage={"prompt_tokens": 3, "completion_tokens": 42, "total_tokens": 45}),
        b"data: [DONE]\n\n",
    ]
    return b"".join([*head, *body[:half], *middle, *body[half:], *tail])


# --- fixtures made long --------------------------------------------------------------------

SSE = ("sse", "text/event-stream")  # framing, Content-Type
NDJSON = ("ndjson", "application/x-ndjson")
LONG_FIXTURES = {
    "openai_chat_stream_usage.sse": ("/v1/chat/completions", *SSE),
    "openai_chat_stream_no_usage_crlf.sse": ("/v1/chat/completions", *SSE),
    "openai_chat_stream_tool_calls.sse": ("/v1/chat/completions", *SSE),
    "openai_chat_stream_n2.sse": ("/v1/chat/completions", *SSE),
    "groq_chat_stream_x_groq.sse": ("/v1/chat/completions", *SSE),
    "anthropic_stream_text.sse": ("/v1/messages", *SSE),
    "anthropic_stream_error.sse": ("/v1/messages", *SSE),
    "openai_responses_stream_failed.sse": ("/v1/responses", *SSE),
    "cohere_chat_stream_text.sse": ("/v2/chat", *SSE),
    "gemini_stream_text.sse": ("/v1beta/models/gemini-2.5-flash:streamGenerateContent", *SSE),
    "ollama_chat_stream_text.ndjson": ("/api/chat", *NDJSON),
    "ollama_chat_stream_error.ndjson": ("/api/chat", *NDJSON),
}


def lengthen(raw: bytes, framing: str, times: int = 150) -> bytes:
    """Repeat the last event that is a content delta (a routine event) ``times`` times."""
    pieces = re.split(rb"(?<=\n)", raw) if framing == "ndjson" else events_of(raw)
    routine = [
        i
        for i, piece in enumerate(pieces)
        if b"content_block_delta" in piece
        or b"output_text.delta" in piece
        or b"content-delta" in piece
        or (b'"content":"' in piece and b"finish_reason" in piece and b'"finish_reason":null' in piece)
        or (b'"done":false' in piece)
    ]
    i = routine[-1] if routine else 1  # Gemini: every chunk carries usage, none is routine
    return b"".join([*pieces[:i], *[pieces[i]] * times, *pieces[i:]])


@pytest.mark.parametrize("name", sorted(LONG_FIXTURES))
def test_long_fixture_streams_read_the_same_through_the_fast_path(name: str) -> None:
    path, framing, content_type = LONG_FIXTURES[name]
    fmt = format_for("openai", path)
    assert fmt is not None
    raw = lengthen(fixture_bytes(name), framing)
    expected = exact(fmt, raw, framing)
    assert expected["chunk_count"] > 150
    for chunks in cuttings(raw):
        assert observed(fmt, chunks, content_type) == expected


def reader_calls(monkeypatch) -> list[str]:  # type: ignore[no-untyped-def]
    """The events handed to a reader one by one from now on (the exact path), for the test to count."""
    calls: list[str] = []
    original = EventStreamReader.on_event

    def counting(self, event, data, now):  # type: ignore[no-untyped-def]
        calls.append(data[:20])
        original(self, event, data, now)

    monkeypatch.setattr(EventStreamReader, "on_event", counting)
    return calls


def test_the_fast_path_is_taken_routine_events_are_not_handed_to_the_reader(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    calls = reader_calls(monkeypatch)
    raw = chat_stream([], routine=200)
    record = observed(CHAT, events_of(raw))
    assert record["chunk_count"] == 204 and record["finish_reasons"] == ["stop"] and record["output_tokens"] == 42
    assert record["completed"] is True
    assert len(calls) <= 6  # the first two (time to first chunk) and the last three, not 205


# --- hostile upstreams ---------------------------------------------------------------------

HOSTILE = {
    "fake markers inside content": [
        chat_event('"finish_reason":"stop"'),
        chat_event('\\"usage\\":{\\"total_tokens\\":9}'),
        chat_event('data: [DONE]\n\nevent: error\n\n"error":{}'),
    ],
    "a finish reason mid-stream (second choice)": [chat_event("", choice={"index": 1, "finish_reason": "length"})],
    "an error chunk mid-stream": [chat_event("", error={"message": "upstream died", "code": 502})],
    "a named error event": [b'event: error\ndata: {"message":"overloaded"}\n\n'],
    "usage mid-stream": [chat_event("", usage={"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2})],
    "spaces after colons": [b'data: {"choices":[{"index":0,"delta":{},"finish_reason": "tool_calls"}]}\n\n'],
    "no space after data:": [b'data:{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'],
    "two spaces after data:": [b'data:  {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'],
    "comments and keep-alives": [b": OPENROUTER PROCESSING\n\n", b":\n\n", b"id: 7\nretry: 10\n\n"],
    "multi-line data": [b'data: {"choices":[{"index":0,"delta":{},\ndata: "finish_reason":"stop"}]}\n\n'],
    "CR line endings": [b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\r\r'],
    "CRLF events between LF ones": [chat_event("a").replace(b"\n", b"\r\n"), chat_event("b")],
    "an early [DONE]": [b"data: [DONE]\n\n"],
    "garbage bytes": [b"\xff\xfe\x00garbage\n\n", b"data: {not json\n\n", b"data: {\xc3\x28}\n\n"],
    "a key spelled with a null-looking value": [chat_event("", choice={"finish_reason": "nullish"})],
    "a huge single event": [chat_event("y" * (BATCH_BUDGET + 1000), choice={"finish_reason": "length"})],
    "blank lines between events": [b"\n\n\n\n", chat_event("z")],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_streams_read_the_same_through_the_fast_path(case: str) -> None:
    raw = chat_stream(HOSTILE[case], routine=120)
    expected = exact(CHAT, raw)
    for chunks in cuttings(raw, seed=len(case)):
        assert observed(CHAT, chunks) == expected, case


def test_a_finish_marker_split_at_every_byte_offset_is_found() -> None:
    """Two chunks, cut at every offset of the stream: the facts and the count never change."""
    raw = chat_stream([chat_event("", choice={"index": 1, "finish_reason": "length"})], routine=8)
    expected = exact(CHAT, raw)
    assert expected["finish_reasons"] == ["stop", "length"]
    for i in range(1, len(raw)):
        assert observed(CHAT, [raw[:i], raw[i:]]) == expected, i


def test_every_byte_offset_after_the_fast_path_engaged() -> None:
    """Three chunks: the first ones engage the fast path, then a cut at every offset of the rest."""
    head = chat_stream([], routine=0)[:0]
    raw = chat_stream([chat_event("", error={"message": "boom"})], routine=6)
    first = b"".join(events_of(raw)[:3])
    rest = raw[len(first) :]
    expected = exact(CHAT, raw)
    assert expected["error_type"] is not None
    for i in range(len(rest) + 1):
        assert observed(CHAT, [head + first, rest[:i], rest[i:]]) == expected, i


def test_held_chunks_are_bounded_in_bytes_and_in_count() -> None:
    """Many 1-byte chunks, then large ones: what the observer holds stays under its budget."""
    raw = chat_stream([], routine=3000)
    record = GenerationRecord(provider="openai", operation="chat", stream=True)
    observer = ResponseObserver(CHAT, record, status_code=200, content_type="text/event-stream")
    most = 0
    for i in range(len(raw)):
        observer.feed(raw[i : i + 1], 1.0)
        most = max(most, len(observer._batch))
    observer.finish(2.0)
    assert most <= BATCH_BUDGET // CHUNK_OVERHEAD + 1
    assert record.chunk_count == exact(CHAT, raw)["chunk_count"]
    assert record.finish_reasons == ["stop"]


def test_closing_mid_stream_sees_the_facts_of_held_chunks() -> None:
    """A consumer that closes after the finish chunk: settle() judges what was held first."""
    raw = chat_stream([], routine=20)
    events = events_of(raw)
    record = GenerationRecord(provider="openai", operation="chat", stream=True)
    observer = ResponseObserver(CHAT, record, status_code=200, content_type="text/event-stream")
    for event in events[:-2]:  # up to the finish chunk; usage and [DONE] not read
        observer.feed(event, 1.0)
    observer.settle()
    assert record.finish_reasons == ["stop"] and record.chunk_count == len(events) - 2
    assert not record.completed
    observer.feed(events[-2], 1.0)
    observer.feed(events[-1], 1.0)
    observer.settle()
    assert record.completed and record.output_tokens == 42


def test_content_capture_decodes_every_event() -> None:
    raw = chat_stream([], routine=30)
    record = GenerationRecord(provider="openai", operation="chat", stream=True, capture_content=True)
    observer = ResponseObserver(CHAT, record, status_code=200, content_type="text/event-stream")
    for event in events_of(raw):
        observer.feed(event, 1.0)
    observer.finish(2.0)
    assert record.output_messages is not None
    text = record.output_messages[0]["parts"][0]["content"]
    assert text == "Hi" + "".join(f" w{i}" for i in range(30))


def test_gzip_streams_use_the_fast_path_too() -> None:
    import zlib

    raw = chat_stream([chat_event("", error={"message": "late"})], routine=120)
    compressor = zlib.compressobj(wbits=31)
    chunks = [compressor.compress(event) + compressor.flush(zlib.Z_SYNC_FLUSH) for event in events_of(raw)]
    chunks.append(compressor.flush())
    record = GenerationRecord(provider="openai", operation="chat", stream=True)
    observer = ResponseObserver(
        CHAT, record, status_code=200, content_type="text/event-stream", content_encoding="gzip"
    )
    for chunk in chunks:
        observer.feed(chunk, 1.0)
    observer.finish(2.0)
    assert comparable(record) == exact(CHAT, raw)


@pytest.mark.parametrize("crlf", [False, True])
def test_a_run_whose_first_event_is_longer_than_half_is_halved_at_an_event_boundary(crlf: bool) -> None:
    """Found by adv15: a failing run whose first event held its middle was halved one byte in
    (no boundary before the middle): that byte was dropped, so the event was lost to the
    decoder (``ata: {...}``) — its finish reason and its count with it."""
    big = chat_event("y" * 20000, choice={"index": 1, "finish_reason": "length"})
    raw = chat_stream([big, chat_event("a"), chat_event("b")], routine=0)
    if crlf:
        raw = raw.replace(b"\n", b"\r\n")
    expected = exact(CHAT, raw)
    assert expected["finish_reasons"] == ["stop", "length"]
    for chunks in cuttings(raw, seed=15)[1:2]:  # one event a chunk: the run starts with the big one
        assert observed(CHAT, chunks) == expected
    routine_big = chat_stream(
        [chat_event("y" * 20000), chat_event("", choice={"index": 1, "finish_reason": "length"})], routine=0
    )
    assert observed(CHAT, events_of(routine_big)) == exact(CHAT, routine_big)


def test_ndjson_runs_are_judged_in_bulk_too(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Found by adv15: NDJSON events end at a line end, not a blank line; the scanner looked for
    a blank line to cut a run at, found none, and decoded every Ollama line one by one."""
    calls = reader_calls(monkeypatch)
    path, framing, content_type = LONG_FIXTURES["ollama_chat_stream_text.ndjson"]
    fmt = format_for("openai", path)
    raw = lengthen(fixture_bytes("ollama_chat_stream_text.ndjson"), framing, times=200)
    lines = re.split(rb"(?<=\n)", raw)
    record = observed(fmt, lines, content_type)
    assert record["chunk_count"] > 200 and record["completed"] is True and record["output_tokens"] == 282
    assert len(calls) <= 8  # the first lines (time to first chunk) and the last ones, not 200


MESSAGES = format_for("anthropic", "/v1/messages")
OLLAMA = format_for("openai", "/api/chat")


def anthropic_delta(text: str) -> bytes:
    body = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}
    return b"event: content_block_delta\ndata: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def anthropic_stream(middle: list[bytes], routine: int = 40) -> bytes:
    start = {"type": "message_start", "message": {"id": "msg_1", "model": "claude", "usage": {"input_tokens": 5}}}
    block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    delta = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 44}}
    body = [anthropic_delta(f" w{i}") for i in range(routine)]
    half = len(body) // 2
    return b"".join(
        [
            b"event: message_start\ndata: " + json.dumps(start).encode() + b"\n\n",
            b"event: content_block_start\ndata: " + json.dumps(block).encode() + b"\n\n",
            anthropic_delta("Hi"),
            *body[:half],
            *middle,
            *body[half:],
            b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n',
            b"event: message_delta\ndata: " + json.dumps(delta).encode() + b"\n\n",
            b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
        ]
    )


ANTHROPIC_HOSTILE = {
    "fake event lines inside text": [anthropic_delta("\nevent: message_stop\n\ndata: {}\n\n"), anthropic_delta("x")],
    "an error event mid-stream": [b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error"}}\n\n'],
    "a ping": [b'event: ping\ndata: {"type": "ping"}\n\n'],
    "an event name without a space": [b'event:message_stop\ndata: {"type":"message_stop"}\n\n'],
    "a routine name with a non-routine one in the same event": [
        b"event: content_block_delta\nevent: message_delta\n"
        b'data: {"type":"message_delta","usage":{"output_tokens":7}}\n\n'
    ],
    "a data line before the event line": [b'data: {"type":"message_stop"}\nevent: content_block_delta\n\n'],
    "CRLF events": [anthropic_delta("a").replace(b"\n", b"\r\n"), anthropic_delta("b").replace(b"\n", b"\r\n")],
    "an event with no data": [b"event: content_block_delta\n\n"],
}


@pytest.mark.parametrize("case", sorted(ANTHROPIC_HOSTILE))
def test_hostile_named_event_streams_read_the_same(case: str) -> None:
    raw = anthropic_stream(ANTHROPIC_HOSTILE[case], routine=120)
    expected = exact(MESSAGES, raw)
    for chunks in cuttings(raw, seed=len(case)):
        assert observed(MESSAGES, chunks) == expected, case


def ollama_line(content: str, **fields) -> bytes:  # type: ignore[no-untyped-def]
    body = {"model": "llama3.2", "message": {"role": "assistant", "content": content}, "done": False, **fields}
    return json.dumps(body, separators=(",", ":")).encode() + b"\n"


OLLAMA_HOSTILE = {
    "fake done inside content": [ollama_line('"done":true,"eval_count":99')],
    "an error line mid-stream": [b'{"error":"model runner crashed"}\n'],
    "done true mid-stream": [ollama_line("", done=True, done_reason="stop", eval_count=3)],
    "blank and indented lines": [b"\n", b"  " + ollama_line("x")],
    "CRLF lines": [ollama_line("a").replace(b"\n", b"\r\n")],
}


@pytest.mark.parametrize("case", sorted(OLLAMA_HOSTILE))
def test_hostile_ndjson_streams_read_the_same(case: str) -> None:
    body = [ollama_line(f" w{i}") for i in range(40)]
    last = ollama_line("", done=True, done_reason="stop", prompt_eval_count=4, eval_count=42)
    raw = b"".join([ollama_line("Hi"), *body[:20], *OLLAMA_HOSTILE[case], *body[20:], last])
    expected = exact(OLLAMA, raw, "ndjson")
    for chunks in cuttings(raw, seed=len(case)):
        assert observed(OLLAMA, chunks, "application/x-ndjson") == expected, case
