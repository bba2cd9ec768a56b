"""The capture-level property: through the hook the app gets exactly what it gets without it.

A raw loopback server answers with random bytes in random chunks (random status, content type,
valid or broken Content-Encoding); the same request is made once with the hook uninstalled and
once installed, by sync and async httpx clients reading in every way an app reads (raw, decoded,
whole body, stopping early). Status, headers, body bytes (or the exception raised) and the
request the server received must be identical, and the traced run must end exactly one GenAI span.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette

from or_middleware import LLMTracingMiddleware, Settings
from or_middleware.capture.call import match_request
from or_middleware.runtime import default_runtime
from tests.reliability.compare import bare_then_traced
from tests.reliability.fuzz_inputs import json_objects
from tests.support.raw_http import RawHTTPServer, RawRequest, send_response


@pytest.fixture(scope="module")
def server() -> Iterator[RawHTTPServer]:
    with RawHTTPServer() as s:
        yield s


class Spans:
    """GenAI spans a runtime ended (kept in memory, never exported)."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.exporter = InMemorySpanExporter()
        runtime.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def take(self) -> list[Any]:
        found = list(self.exporter.get_finished_spans())
        self.exporter.clear()
        return found


_current: Spans | None = None


def spans_for(server: RawHTTPServer) -> Spans:
    """The test's runtime and its spans, made on the first example (Hypothesis runs the body
    once per example; the suite's autouse fixture shuts every runtime down after each test)."""
    global _current
    runtime = default_runtime()
    if runtime is None or match_request("POST", "http", "127.0.0.1", server.port, "/x/chat/completions") is None:
        LLMTracingMiddleware(Starlette(), settings=Settings(destinations=[], llm_hosts=f"openai={server.url}"))
        runtime = default_runtime()
    if _current is None or _current.runtime is not runtime:
        _current = Spans(runtime)
    return _current


CONTENT_TYPES = ["application/json", "text/event-stream", "text/plain", "application/octet-stream"]

answers = st.fixed_dictionaries({
    "status": st.sampled_from([200, 200, 200, 400, 429, 500]),
    "content_type": st.sampled_from(CONTENT_TYPES),
    "encoding": st.sampled_from(["none", "gzip", "gzip-garbage"]),
    "body": st.one_of(
        st.binary(max_size=2000),
        json_objects().map(lambda v: json.dumps(v).encode("utf-8", "surrogatepass")),
        st.lists(st.text(max_size=40), max_size=10).map(
            lambda items: "".join(f"data: {t}\n\n" for t in items).encode("utf-8", "surrogatepass")),
    ),
    "cuts": st.lists(st.integers(0, 4000), max_size=8),
})
reads = st.sampled_from(["raw", "bytes", "whole", "lines", "first_chunk_then_close"])


def pieces(answer: dict[str, Any]) -> tuple[dict[str, str], list[bytes]]:
    body = answer["body"]
    headers = {"content-type": answer["content_type"]}
    if answer["encoding"] == "gzip":
        body = gzip.compress(body)
        headers["content-encoding"] = "gzip"
    elif answer["encoding"] == "gzip-garbage":
        headers["content-encoding"] = "gzip"
    cuts = sorted({c % (len(body) + 1) for c in answer["cuts"]})
    return headers, [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]


def _without_traceparent(request: RawRequest) -> tuple[str, str, bytes, list[tuple[str, str]]]:
    headers = sorted((k, v) for k, v in request.headers.items() if k not in ("traceparent", "tracestate"))
    return request.method, request.path, request.body, headers


@given(answer=answers, request=json_objects(), read=reads, use_async=st.booleans())
def test_fuzz_the_app_sees_the_same_bytes_with_and_without_the_hook(server, answer, request, read, use_async):
    spans = spans_for(server)
    spans.take()
    request_body = json.dumps(request).encode("utf-8", "surrogatepass")
    headers, body = pieces(answer)
    path = server.route(lambda request, conn: send_response(conn, answer["status"], headers, body))
    before = len(server.received)
    bare, traced = bare_then_traced(f"{server.url}{path}/chat/completions", request_body, read=read,
                                    use_async=use_async)
    assert traced == bare
    sent_bare, sent_traced = server.received[before:]
    assert _without_traceparent(sent_traced) == _without_traceparent(sent_bare)
    assert "traceparent" in sent_traced.headers  # it was traced (LLM_HOSTS entries get traceparent)
    assert len(spans.take()) == 1  # ended exactly once, whichever way the read ended
