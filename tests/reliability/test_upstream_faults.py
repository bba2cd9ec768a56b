"""Upstream fault matrix: every way an LLM API can misbehave on the wire.

For each fault the same call is made without the hook and with it (sync and async httpx):
what the app sees — status, headers, body bytes, or the exception and its message — must be
identical, and the GenAI span that reaches an OTLP receiver must be ERROR with a precise
``error.type``: the name of the exception the app saw, or what our parser found wrong.
Exit paths of a healthy stream (break, GC, cancellation, ...) are test_stream_lifecycle's.
"""

from __future__ import annotations

import functools
import gzip
import json
import socket
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from starlette.applications import Starlette

import or_middleware
from or_middleware import LLMTracingMiddleware, Settings
from tests.conftest import otlp
from tests.reliability.compare import bare_then_traced, call
from tests.support.llm_wire import chat_frames, chat_json
from tests.support.memory import peak_growth
from tests.support.otlp_receiver import OTLPReceiver, ReceivedSpan
from tests.support.raw_http import RawHTTPServer, RawRequest, Script, chunk, head_bytes, reset, send_response

SSE = {"content-type": "text/event-stream"}
JSON = {"content-type": "application/json"}
WORDS = ["one", "two", "three", "four"]


@pytest.fixture(scope="module")
def server() -> Iterator[RawHTTPServer]:
    with RawHTTPServer() as s:
        yield s


def dead_url() -> str:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


DEAD = dead_url()


@pytest.fixture
def traced(server: RawHTTPServer, receiver: OTLPReceiver) -> Callable[..., ReceivedSpan]:
    """A runtime exporting (content on) to the receiver; returns: (model, operation) -> its one GenAI span."""
    settings = Settings(destinations=[otlp(receiver, privacy_mode=False)],
                        llm_hosts=f"openai={server.url},dead={DEAD}")
    LLMTracingMiddleware(Starlette(), settings=settings)

    def span_of(model: str, operation: str = "chat") -> ReceivedSpan:
        assert or_middleware.force_flush(10_000)
        [span] = receiver.wait_for_spans(lambda s: s.name == f"{operation} {model}", timeout=10)
        return span

    return span_of


# --- the faults ------------------------------------------------------------------------------


def _stall(server: RawHTTPServer) -> None:
    server.released.wait(10)  # until the test's server closes; the client times out long before


def headers_then_reset(request: RawRequest, conn: socket.socket) -> None:
    conn.sendall(head_bytes(200, {**SSE, "transfer-encoding": "chunked"}))
    for frame in chat_frames(WORDS)[:3]:
        conn.sendall(chunk(frame))
    time.sleep(0.05)  # let the client read what was sent, so the reset hits it mid-body
    reset(conn)


def json_then_reset(request: RawRequest, conn: socket.socket) -> None:
    body = chat_json("half of an answer")
    conn.sendall(head_bytes(200, {**JSON, "content-length": str(len(body))}) + body[: len(body) // 2])
    time.sleep(0.05)
    reset(conn)


def reset_before_headers(request: RawRequest, conn: socket.socket) -> None:
    reset(conn)


def chunked_then_fin(request: RawRequest, conn: socket.socket) -> None:
    conn.sendall(head_bytes(200, {**SSE, "transfer-encoding": "chunked"}))
    for frame in chat_frames(WORDS)[:3]:
        conn.sendall(chunk(frame))  # and no terminating 0-chunk: the peer just closes


def short_content_length(request: RawRequest, conn: socket.socket) -> None:
    body = chat_json("the whole answer would be longer")
    conn.sendall(head_bytes(200, {**JSON, "content-length": str(len(body) + 100)}) + body)


def bad_chunk_size(request: RawRequest, conn: socket.socket) -> None:
    conn.sendall(head_bytes(200, {**SSE, "transfer-encoding": "chunked"}) + chunk(chat_frames(WORDS)[0])
                 + b"zz\r\nnot a chunk\r\n")


def chunking_edge_cases(request: RawRequest, conn: socket.socket) -> None:
    """Legal but unusual HTTP/1.1 chunking: extensions, upper-case hex, leading zeros, 1-byte
    chunks splitting a UTF-8 character and a CRLF, and trailers after the last chunk."""
    data = b"".join(chat_frames(["caf\u00e9", "\u2615", "end"]))
    at = data.index("\u2615".encode()) + 1
    out = [head_bytes(200, {**SSE, "transfer-encoding": "chunked", "trailer": "x-checksum"})]
    out.append(chunk(data[:10], extension=';name="value"'))
    out.append(chunk(data[10:40], upper=True, pad=8))
    out.extend(chunk(data[i : i + 1]) for i in range(40, at + 2))  # 1 byte each, through the ☕
    out.append(chunk(data[at + 2 :], extension=";a;b=c"))
    out.append(b"0;last\r\nx-checksum: abc\r\n\r\n")
    for piece in out:
        conn.sendall(piece)


def stall_after_first_event(server: RawHTTPServer) -> Script:
    def script(request: RawRequest, conn: socket.socket) -> None:
        conn.sendall(head_bytes(200, {**SSE, "transfer-encoding": "chunked"}) + chunk(chat_frames(WORDS)[1]))
        _stall(server)

    return script


def stall_before_headers(server: RawHTTPServer) -> Script:
    def script(request: RawRequest, conn: socket.socket) -> None:
        _stall(server)

    return script


def answer(status: int, headers: dict[str, str], *body: bytes, chunked: bool = True) -> Script:
    return lambda request, conn: send_response(conn, status, headers, body, chunked=chunked)


def error_body_with_lone_surrogate(request: RawRequest, conn: socket.socket) -> None:
    # Valid JSON: "\ud83d" is half of an emoji's surrogate pair, as a JS server cuts a string.
    body = b'{"error":{"code":"rate_\\ud83d","message":"slow down \\ud83d","type":"x"}}'
    send_response(conn, 429, {**JSON, "retry-after": "1"}, [body], chunked=False)


@dataclass(frozen=True)
class Fault:
    name: str
    script: Callable[[RawHTTPServer], Script] | Script | None  # None: nobody listens
    stream: bool
    error_type: str | None  # None: the exception the app saw (its class name)
    timeout: float = 10.0


def _server_bound(factory: Callable[[RawHTTPServer], Script]) -> Callable[[RawHTTPServer], Script]:
    factory.server_bound = True  # type: ignore[attr-defined]
    return factory


FAULTS = [
    Fault("connection_refused", None, False, None),
    Fault("reset_before_headers", reset_before_headers, False, None),
    Fault("reset_mid_stream", headers_then_reset, True, None),
    Fault("reset_mid_json", json_then_reset, False, None),
    Fault("closed_mid_chunked_body", chunked_then_fin, True, None),
    Fault("content_length_longer_than_body", short_content_length, False, None),
    Fault("invalid_chunk_size", bad_chunk_size, True, None),
    Fault("stalled_stream_read_timeout", _server_bound(stall_after_first_event), True, None, timeout=0.25),
    Fault("stalled_before_headers_read_timeout", _server_bound(stall_before_headers), False, None, timeout=0.25),
    Fault("invalid_json", answer(200, JSON, b'{"id": "x", "choices": [', chunked=False), False, "invalid_json"),
    Fault("invalid_utf8_in_json", answer(200, JSON, b'{"id":"x","choices":[],"model":"\xff\xfe"}'), False,
          "invalid_json"),
    Fault("empty_json_body", answer(200, JSON, chunked=False), False, "invalid_json"),
    Fault("html_error_page", answer(502, {"content-type": "text/html"}, b"<html>Bad gateway</html>"), False,
          "http_502"),
    Fault("json_error_body_with_lone_surrogate", error_body_with_lone_surrogate, False, "rate_\ufffd"),
    Fault("sse_error_status", answer(503, SSE, b'data: {"error":{"message":"overloaded","code":503}}\n\n'),
          True, "http_503"),
    Fault("stream_without_done", answer(200, SSE, *chat_frames(WORDS)[:-1]), True, "truncated"),
    Fault("gzip_header_but_plain_body", answer(200, {**JSON, "content-encoding": "gzip"}, chat_json("plain")),
          False, "parse_error"),
]


def _url(fault: Fault, server: RawHTTPServer) -> str:
    if fault.script is None:
        return f"{DEAD}/chat/completions"
    script = fault.script(server) if getattr(fault.script, "server_bound", False) else fault.script
    return f"{server.url}{server.route(script)}/chat/completions"  # type: ignore[arg-type]


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_upstream_fault(fault, use_async, server, traced):
    model = f"fault/{fault.name}-{'async' if use_async else 'sync'}"
    body = json.dumps({"model": model, "stream": fault.stream, "messages": [{"role": "user", "content": "hi"}]})
    url = _url(fault, server)
    bare, traced_outcome = bare_then_traced(url, body.encode(), use_async=use_async, timeout=fault.timeout)
    assert traced_outcome == bare  # the app sees exactly what it sees without us
    span = traced(model)
    expected = fault.error_type
    if expected is None:
        assert bare[0] == "error", bare  # a transport-level fault: the app got an exception
        expected = bare[1]
    assert span.status_code == "ERROR", span.attributes
    assert span.attributes["error.type"] == expected
    assert span.status_message == expected
    if fault.stream and bare[0] == "error" and span.attributes.get("http.response.status_code") == 200:
        assert span.attributes["or_middleware.stream.outcome"] == "error"


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_legal_chunking_edge_cases_are_read_correctly(use_async, server, traced):
    model = f"edge/chunking-{use_async}"
    body = json.dumps({"model": model, "stream": True, "messages": [{"role": "user", "content": "hi"}]}).encode()
    url = f"{server.url}{server.route(chunking_edge_cases)}/chat/completions"
    bare, traced_outcome = bare_then_traced(url, body, use_async=use_async, read="lines")
    assert traced_outcome == bare and bare[0] == "ok"
    span = traced(model)
    assert span.status_code != "ERROR"
    assert span.attributes["gen_ai.usage.output_tokens"] == 3
    assert span.attributes["or_middleware.stream.outcome"] == "completed"
    assert "caf\u00e9\u2615end" in span.attributes["gen_ai.output.messages"]  # split UTF-8 reassembled


def test_invalid_utf8_inside_a_stream_is_replaced_as_the_sse_spec_says(server, traced):
    """Not an error: WHATWG event streams decode UTF-8 with replacement (the openai SDK's stricter
    decoder raises in the app's own code, which closes the stream: that span is "abandoned")."""
    frames = chat_frames(WORDS)
    frames[2] = b'data: {"id":"chatcmpl-raw","choices":[{"index":0,"delta":{"content":"bad \xff byte"}}]}\n\n'
    url = f"{server.url}{server.route(answer(200, SSE, *frames))}/chat/completions"
    body = json.dumps({"model": "utf8/sse", "stream": True, "messages": []}).encode()
    bare, traced_outcome = bare_then_traced(url, body)
    assert traced_outcome == bare
    span = traced("utf8/sse")
    assert span.status_code != "ERROR"
    assert "bad \ufffd byte" in span.attributes["gen_ai.output.messages"]


# --- compression bombs ---------------------------------------------------------------------------


def gzip_bomb(expanded: int) -> bytes:
    """``expanded`` bytes of zeros, gzip-compressed (about 200:1 at level 1, the fastest to
    build), without ever holding them."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    out = [compressor.compress(block) for _ in range(expanded >> 20)]
    out.append(compressor.flush())
    return b"".join(out)


@functools.cache
def bomb(nested: bool) -> bytes:
    payload = gzip_bomb(128 << 20)  # 128 MB of zeros in ~600 KB: twice the 64 MB decode cap
    return gzip.compress(payload) if nested else payload


@pytest.mark.parametrize(("content_type", "encoding", "error_types"), [
    # A JSON body stops being kept at the 8 MB parse limit, usually before the 64 MB decode cap.
    ("application/json", "gzip", {"response_too_large", "decompression_limit"}),
    ("text/event-stream", "gzip", {"decompression_limit"}),
    # nested: the outer layer is small, the inner one explodes
    ("application/json", "gzip, gzip", {"response_too_large", "decompression_limit"}),
])
def test_a_compression_bomb_is_capped_and_the_app_gets_the_encoded_bytes(server, traced, content_type, encoding,
                                                                          error_types):
    payload = bomb(nested="," in encoding)
    model = f"bomb/{content_type.split('/')[1]}-{encoding.replace(', ', '-')}"
    pieces = [payload[i : i + 65536] for i in range(0, len(payload), 65536)]
    headers = {"content-type": content_type, "content-encoding": encoding}
    url = f"{server.url}{server.route(answer(200, headers, *pieces))}/chat/completions"
    body = json.dumps({"model": model, "stream": content_type == "text/event-stream", "messages": []}).encode()
    or_middleware.uninstrument()
    try:
        bare = call(url, body)
    finally:
        or_middleware.instrument()
    started = time.perf_counter()
    traced_outcome, peak = peak_growth(lambda: call(url, body))  # the app reads raw: it never inflates it
    assert traced_outcome == bare
    assert peak < 32 << 20, f"peak {peak >> 20} MB while reading a bomb"  # not 128 MB
    assert time.perf_counter() - started < 20
    span = traced(model)
    assert span.status_code == "ERROR"
    assert span.attributes["error.type"] in error_types


# --- huge answers: streamed through, never held ---------------------------------------------------


def price_table_loaded() -> None:
    """Load genai-prices' table now, so its one-off cost stays out of what a test measures."""
    from or_middleware.genai.cost import _snapshot

    _snapshot()


def _lazy(pieces: Callable[[], Iterator[bytes]], headers: dict[str, str]) -> Script:
    return lambda request, conn: send_response(conn, 200, headers, pieces())


@pytest.mark.parametrize(("kind", "size_mb"), [("chat", 50), ("embeddings", 50)])
def test_a_50_mb_json_answer(server, traced, kind, size_mb):
    from tests.support.llm_wire import big_chat_json, big_embeddings_json

    model = f"big/{kind}"
    make = big_chat_json if kind == "chat" else big_embeddings_json
    path = "/chat/completions" if kind == "chat" else "/embeddings"
    url = f"{server.url}{server.route(_lazy(lambda: make(size_mb << 20), JSON))}{path}"
    body = json.dumps({"model": model, "messages": [], "input": "x"}).encode()
    or_middleware.uninstrument()
    try:
        bare = call(url, body)
    finally:
        or_middleware.instrument()
    price_table_loaded()
    traced_outcome, peak = peak_growth(lambda: call(url, body))
    assert traced_outcome == bare and bare[3][0] >= size_mb * 1_000_000
    assert peak < 24 << 20, f"peak {peak >> 20} MB"  # the parse cap is 8 MB; the body is never joined
    span = traced(model, "chat" if kind == "chat" else "embeddings")
    if kind == "chat":  # the body outgrew the parse limit: a precise error, nothing invented
        assert span.status_code == "ERROR" and span.attributes["error.type"] == "response_too_large"
    else:  # embeddings batches are read from their ends: usage and dimensions, no error
        assert span.status_code != "ERROR"
        assert span.attributes["gen_ai.usage.input_tokens"] > 1000
        assert span.attributes["gen_ai.embeddings.dimension.count"] == 1536


@pytest.mark.heavy
def test_a_100_mb_stream_passes_through_with_bounded_memory(server, traced):
    """The expected bytes are hashed from the generator itself (a bare run would move another 100 MB)."""
    from tests.reliability.compare import Digest
    from tests.support.llm_wire import many_frames

    size = 100 << 20
    expected = Digest()
    for frame in many_frames(size):
        expected.add(frame)
    url = f"{server.url}{server.route(_lazy(lambda: many_frames(size), SSE))}/chat/completions"
    body = json.dumps({"model": "big/stream", "stream": True, "messages": []}).encode()
    price_table_loaded()
    started = time.perf_counter()
    outcome, peak = peak_growth(lambda: call(url, body))
    elapsed = time.perf_counter() - started
    print(f"100 MB stream: {elapsed:.1f} s, peak growth {peak >> 20} MB")
    assert outcome[0] == "ok" and outcome[3] == expected.result()
    assert peak < 40 << 20, f"peak {peak >> 20} MB"
    span = traced("big/stream")
    assert span.status_code != "ERROR"
    assert span.attributes["or_middleware.stream.outcome"] == "completed"
    assert span.attributes["gen_ai.usage.output_tokens"] == span.attributes["or_middleware.stream.chunk_count"] - 3
    assert len(span.attributes["gen_ai.output.messages"]) <= 70_000  # content capped, not 100 MB
