from __future__ import annotations

import functools
import gzip
import json
import zlib
from collections.abc import Mapping
from typing import Any

import pytest

from or_middleware.genai.decoding import STEP
from or_middleware.genai.openai_chat import ChatCompletionsFormat
from or_middleware.genai.record import GenerationRecord
from or_middleware.genai.response import ResponseObserver
from tests.genai.genai_testing import comparable, fixture_bytes, observe

CHAT = ChatCompletionsFormat()
STREAM = fixture_bytes("openai_chat_stream_usage.sse")
JSON_BODY = fixture_bytes("openai_chat_tool_calls.json")


def slices(raw: bytes, size: int) -> list[bytes]:
    return [raw[i : i + size] for i in range(0, len(raw), size)]


def new_observer(
    fmt: Any = CHAT, *, status: int = 200, content_type: str | None = "application/json", **options: Any
) -> tuple[ResponseObserver, GenerationRecord]:
    record = GenerationRecord(provider="openai", capture_content=True)
    return ResponseObserver(fmt, record, status_code=status, content_type=content_type, **options), record


# --- JSON bodies ------------------------------------------------------------------------------


def test_json_body_in_small_chunks() -> None:
    record = observe(CHAT, slices(JSON_BODY, 7), content_type="application/json; charset=utf-8")
    assert record.response_id == "chatcmpl-BNtoolsync"
    assert record.stream is False
    assert record.error_type is None


def test_invalid_json() -> None:
    record = observe(CHAT, b'{"id": "x", ', content_type="application/json")
    assert record.error_type == "invalid_json"


def test_empty_body_is_fine_only_for_204() -> None:
    assert observe(CHAT, b"", status=204, content_type=None).error_type is None
    assert observe(CHAT, b"", status=200, content_type="application/json").error_type == "invalid_json"


def test_non_json_error_body_falls_back_to_status() -> None:
    record = observe(CHAT, b"<html>Bad Gateway</html>", status=502, content_type="text/html")
    assert record.error_type == "http_502"
    assert record.error_message == "<html>Bad Gateway</html>"


def test_error_status_with_unnamed_error_still_errors() -> None:
    record = observe(CHAT, b"{}", status=500, content_type="application/json")
    assert record.error_type == "http_500"


def test_too_large_body_stops_accumulating() -> None:
    observer, record = new_observer(max_json_bytes=100)
    observer.feed(b"x" * 60, 1.0)
    observer.feed(b"x" * 60, 1.0)
    assert observer._body is None  # nothing kept past the limit
    observer.feed(b"x" * 10_000, 1.0)
    observer.finish(2.0)
    assert record.error_type == "response_too_large"


def test_redirect_is_not_parsed_and_not_an_error() -> None:
    observer, record = new_observer(status=307, content_type="text/html")
    observer.feed(b"<a href=...>", 1.0)
    observer.finish(1.0)
    assert observer.skipped_reason == "redirect"
    assert record.error_type is None
    assert record.status_code == 307


# --- stream detection -------------------------------------------------------------------------


def test_event_stream_with_parameters_and_no_content_type_for_stream_request() -> None:
    record = observe(CHAT, STREAM, content_type="text/event-stream; charset=utf-8")
    assert record.stream and record.completed
    record = observe(CHAT, STREAM, content_type=None, request={"model": "m", "stream": True})
    assert record.stream and record.completed


def test_json_answer_to_a_stream_request_is_parsed_as_json() -> None:
    record = observe(CHAT, JSON_BODY, content_type="application/json", request={"model": "m", "stream": True})
    assert record.response_id == "chatcmpl-BNtoolsync"
    assert record.error_type is None


def test_error_status_with_event_stream_type_is_judged_by_status() -> None:
    record = observe(CHAT, b'{"error": {"code": 503, "message": "No provider"}}', status=503)
    assert record.error_type == "503"


# --- never raises -----------------------------------------------------------------------------


class _Exploding:
    operation = "chat"

    def read_request(self, body: Mapping[str, Any], record: GenerationRecord) -> None: ...

    def read_response(self, body: Any, record: GenerationRecord) -> None:
        raise RuntimeError("bug in a parser")

    def read_error(self, body: Any, record: GenerationRecord) -> None:
        raise RuntimeError("bug in a parser")

    def stream_reader(self, record: GenerationRecord, *, max_content_chars: int = 0) -> _Exploding:
        return self

    def on_event(self, event: str | None, data: str, now: float) -> None:
        raise RuntimeError("bug in a parser")

    def on_end(self) -> None:
        raise RuntimeError("bug in a parser")


@pytest.mark.parametrize(
    ("status", "content_type", "body"),
    [(200, "application/json", b"{}"), (400, "application/json", b"{}"), (200, "text/event-stream", b"data: {}\n\n")],
)
def test_parser_exceptions_become_parse_error(status: int, content_type: str, body: bytes) -> None:
    observer, record = new_observer(_Exploding(), status=status, content_type=content_type)
    observer.feed(body, 1.0)
    observer.finish(2.0)
    observer.finish(2.0)
    assert record.error_type == "parse_error"


# --- end of body ------------------------------------------------------------------------------


def test_finish_runs_once() -> None:
    observer, record = new_observer(content_type="text/event-stream")
    observer.feed(STREAM, 1.0)
    observer.finish(2.0)
    observer.abandon(3.0, error_type="cancelled")
    observer.finish(4.0)
    assert record.completed and record.error_type is None


def test_abandoned_stream_keeps_partial_output_without_judging() -> None:
    observer, record = new_observer(content_type="text/event-stream")
    observer.feed(STREAM[: STREAM.index(b"caf")], 1.0)
    observer.abandon(2.0)
    assert record.error_type is None  # the caller decides whether stopping early is an error
    assert not record.completed
    assert record.time_to_first_chunk == pytest.approx(1.0)
    assert record.output_messages[0]["parts"] == [{"type": "text", "content": "Hello there, "}]
    observer.feed(STREAM, 3.0)  # nothing is parsed after the end
    observer.finish(3.0)
    assert record.finish_reasons == []


def test_abandon_with_a_reason_records_that_reason() -> None:
    observer, record = new_observer(content_type="text/event-stream")
    observer.feed(STREAM[:300], 1.0)
    observer.abandon(2.0, error_type="cancelled", message="client went away")
    assert record.error_type == "cancelled"
    assert record.error_message == "client went away"


def test_abandon_after_done_is_complete() -> None:
    observer, record = new_observer(content_type="text/event-stream")
    observer.feed(STREAM, 1.0)
    observer.abandon(2.0)
    assert record.completed
    assert record.input_tokens == 1234
    assert record.error_type is None


def test_abandoned_json_body() -> None:
    observer, record = new_observer()
    observer.feed(JSON_BODY[:50], 1.0)
    observer.abandon(2.0)
    assert record.error_type is None
    assert record.response_id is None


def test_abandoned_json_body_that_had_fully_arrived_is_read() -> None:
    observer, record = new_observer()
    observer.feed(JSON_BODY, 1.0)
    observer.abandon(2.0)
    assert record.response_id == "chatcmpl-BNtoolsync"


def test_abandoned_error_status() -> None:
    observer, record = new_observer(status=500)
    observer.abandon(2.0)
    assert record.error_type == "http_500"
    observer, record = new_observer(status=429)
    observer.feed(fixture_bytes("openai_error_429.json"), 1.0)
    observer.abandon(2.0)
    assert record.error_type == "rate_limit_exceeded"


# --- Content-Encoding -------------------------------------------------------------------------


def _deflate_raw(raw: bytes) -> bytes:
    obj = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return obj.compress(raw) + obj.flush()


ENCODERS = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,  # the HTTP spec's zlib-wrapped deflate
    "deflate-raw": _deflate_raw,  # what some servers send instead
    "gzip-members": lambda raw: gzip.compress(raw[:500]) + gzip.compress(raw[500:]),
}


@pytest.mark.parametrize("name", sorted(ENCODERS))
@pytest.mark.parametrize("size", [1, 13, 4096])
def test_compressed_stream_decoded_for_parsing(name: str, size: int) -> None:
    encoded = ENCODERS[name](STREAM)
    header = name.split("-")[0]
    record = observe(CHAT, slices(encoded, size), content_encoding=header)
    assert comparable(record) == comparable(observe(CHAT, STREAM))
    assert record.completed and record.input_tokens == 1234


def test_brotli() -> None:
    brotli = pytest.importorskip("brotli")
    record = observe(CHAT, slices(brotli.compress(STREAM), 17), content_encoding="br")
    assert record.completed and record.input_tokens == 1234


def test_zstd() -> None:
    zstandard = pytest.importorskip("zstandard")
    record = observe(
        CHAT,
        slices(zstandard.ZstdCompressor().compress(JSON_BODY), 17),
        content_type="application/json",
        content_encoding="zstd",
    )
    assert record.response_id == "chatcmpl-BNtoolsync"


def test_two_codings_are_undone_in_reverse_order() -> None:
    encoded = zlib.compress(gzip.compress(JSON_BODY))  # gzip first, then deflate
    record = observe(CHAT, slices(encoded, 10), content_type="application/json", content_encoding="gzip, deflate")
    assert record.response_id == "chatcmpl-BNtoolsync"


def test_unknown_coding_is_skipped_without_error() -> None:
    observer, record = new_observer(content_encoding="compress")
    observer.feed(b"\x1f\x9d....", 1.0)
    observer.finish(2.0)
    assert observer.skipped_reason == "unsupported content-encoding compress"
    assert record.error_type is None


def test_corrupt_gzip_is_a_parse_error_not_an_exception() -> None:
    record = observe(
        CHAT, [b"\x1f\x8b\x08\x00garbage-garbage"], content_type="application/json", content_encoding="gzip"
    )
    assert record.error_type == "parse_error"


@functools.cache
def _bomb(coding: str) -> bytes:
    zeros = b"\0" * (64 * 1024 * 1024)  # 64 MiB of zeros: a few KiB to a few hundred KiB encoded
    if coding == "gzip":
        return gzip.compress(zeros, 6)
    if coding == "br":
        return pytest.importorskip("brotli").compress(zeros, quality=1)
    return pytest.importorskip("zstandard").ZstdCompressor(level=1).compress(zeros)


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
@pytest.mark.parametrize("content_type", ["application/json", "text/event-stream"])
def test_decompression_bomb_is_stopped_early(coding: str, content_type: str) -> None:
    bomb = _bomb(coding)
    limit = 1024 * 1024
    observer, record = new_observer(content_type=content_type, content_encoding=coding, max_decoded_bytes=limit)
    for piece in slices(bomb, 65536):
        observer.feed(piece, 1.0)
    observer.finish(2.0)
    assert record.error_type == "decompression_limit"
    # Stopped one decoder slice past the budget, not after inflating all 64 MiB.
    assert observer._decoded <= limit + STEP


def test_error_body_under_gzip() -> None:
    body = gzip.compress(json.dumps({"error": {"code": 429, "message": "Rate limited"}}).encode())
    record = observe(CHAT, body, status=429, content_type="application/json", content_encoding="gzip")
    assert record.error_type == "429"
