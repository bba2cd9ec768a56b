"""Every way an LLM response can end: the GenAI span ends exactly once, with the right status.

The LLM calls here are made from the test itself (outside any request), which the middleware
traces with its runtime as root spans; the app-facing paths are covered in test_core_pipeline.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
import time

import httpx
import pytest
from starlette.applications import Starlette

import or_middleware
from or_middleware import LLMTracingMiddleware
from or_middleware.demo.serving import serve_asgi
from tests.apps import chat_body
from tests.conftest import make_settings, otlp


@pytest.fixture
def traced(upstream, receiver):
    """A middleware runtime exporting to the receiver; returns a function that waits for GenAI spans."""
    LLMTracingMiddleware(Starlette(), settings=make_settings(upstream, otlp(receiver)))

    def spans(count: int = 1):
        or_middleware.force_flush()
        found = receiver.wait_for_spans(lambda s: s.scope == "or_middleware", count=count)
        time.sleep(0.1)
        or_middleware.force_flush()
        assert len([s for s in receiver.spans if s.scope == "or_middleware"]) == count  # ended exactly once
        return found

    return spans


def stream_body(text: str = "one two three four five six") -> dict:
    return chat_body(text, stream=True)


def test_read_to_the_end_sync(upstream, traced):
    with httpx.Client() as client, client.stream("POST", f"{upstream.openrouter}/chat/completions",
                                                 json=stream_body()) as response:
        data = b"".join(response.iter_bytes())
    assert data.rstrip().endswith(b"[DONE]")
    span = traced()[0]
    assert span.status_code == "UNSET"
    assert span.attributes["or_middleware.stream.outcome"] == "completed"
    assert span.attributes["gen_ai.usage.output_tokens"] > 0
    assert span.attributes["gen_ai.response.time_to_first_chunk"] > 0
    assert span.attributes["or_middleware.stream.chunk_count"] >= 3


def test_read_to_the_end_async(upstream, traced):
    async def run() -> bytes:
        async with httpx.AsyncClient() as client, client.stream(
            "POST", f"{upstream.openrouter}/chat/completions", json=stream_body()
        ) as response:
            return b"".join([chunk async for chunk in response.aiter_bytes()])

    assert asyncio.run(run()).rstrip().endswith(b"[DONE]")
    span = traced()[0]
    assert span.attributes["or_middleware.stream.outcome"] == "completed"
    assert span.attributes["gen_ai.usage.input_tokens"] > 0


def test_consumer_breaks_out_early(upstream, traced):
    with httpx.Client() as client, client.stream(
        "POST", f"{upstream.openrouter}/chat/completions", json=stream_body(), headers={"x-fake-chunks": "50"}
    ) as response:
        for _ in response.iter_raw():
            break
    span = traced()[0]
    assert span.attributes["or_middleware.stream.outcome"] == "abandoned"
    assert span.status_code == "UNSET"


def test_with_block_exits_without_reading(upstream, traced):
    with httpx.Client() as client, client.stream("POST", f"{upstream.openrouter}/chat/completions",
                                                 json=stream_body()):
        pass
    span = traced()[0]
    assert span.attributes["or_middleware.stream.outcome"] == "abandoned"


def test_exception_inside_the_consumer_loop(upstream, traced):
    class AppError(Exception):
        pass

    with pytest.raises(AppError), httpx.Client() as client, client.stream(
        "POST", f"{upstream.openrouter}/chat/completions", json=stream_body()
    ) as response:
        for _ in response.iter_lines():
            raise AppError("the app's own bug")
    span = traced()[0]
    assert span.attributes["or_middleware.stream.outcome"] == "abandoned"


def test_truncated_stream_is_an_error(upstream, traced):
    with httpx.Client() as client, client.stream("POST", f"{upstream.openrouter}/chat/completions",
                                                 json=stream_body(), headers={"x-fake-scenario": "truncated"}) as r:
        data = b"".join(r.iter_bytes())
    assert b"[DONE]" not in data
    span = traced()[0]
    assert span.status_code == "ERROR"
    assert span.attributes["error.type"] == "truncated"


def test_midstream_error_under_http_200_is_an_error(upstream, traced):
    scenario = {"x-fake-scenario": "midstream_error"}
    with httpx.Client() as client, client.stream("POST", f"{upstream.openrouter}/chat/completions",
                                                 json=stream_body(), headers=scenario) as r:
        b"".join(r.iter_bytes())
        assert r.status_code == 200
    span = traced()[0]
    assert span.status_code == "ERROR"
    assert span.attributes["error.type"] not in (None, "truncated")
    assert span.attributes["http.response.status_code"] == 200


def test_http_error_status(upstream, traced):
    response = httpx.post(f"{upstream.openrouter}/chat/completions", json=chat_body("x"),
                          headers={"x-fake-scenario": "error_429"})
    assert response.status_code == 429
    span = traced()[0]
    assert span.status_code == "ERROR"
    assert span.attributes["http.response.status_code"] == 429
    assert span.attributes["error.type"]


def test_task_cancellation(upstream, traced):
    async def run() -> None:
        async with httpx.AsyncClient() as client:
            async def consume() -> None:
                async with client.stream("POST", f"{upstream.openrouter}/chat/completions", json=stream_body(),
                                         headers={"x-fake-chunk-delay-ms": "200", "x-fake-chunks": "20"}) as r:
                    async for _ in r.aiter_raw():
                        pass

            task = asyncio.create_task(consume())
            await asyncio.sleep(0.5)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(run())
    span = traced()[0]
    assert span.attributes["or_middleware.stream.outcome"] in ("error", "abandoned")
    if span.attributes["or_middleware.stream.outcome"] == "error":
        assert span.attributes["error.type"] == "CancelledError"


def test_upstream_connection_refused(upstream, receiver):
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = f"http://127.0.0.1:{port}/api/v1"
    from or_middleware import Settings

    LLMTracingMiddleware(Starlette(), settings=Settings(destinations=[otlp(receiver)], llm_hosts=f"openrouter={dead}"))
    with pytest.raises(httpx.ConnectError):
        httpx.post(f"{dead}/chat/completions", json=chat_body("x"))
    or_middleware.force_flush()
    span = receiver.wait_for_spans(lambda s: s.scope == "or_middleware")[0]
    assert span.status_code == "ERROR"
    assert span.attributes["error.type"] == "ConnectError"


def test_a_response_never_read_and_garbage_collected_still_ends(upstream, traced):
    client = httpx.Client()
    response = client.send(
        client.build_request("POST", f"{upstream.openrouter}/chat/completions", json=stream_body()), stream=True
    )
    assert response.status_code == 200
    del response
    gc.collect()
    span = traced()[0]
    assert span.attributes["or_middleware.stream.outcome"] == "abandoned"
    client.close()


def test_client_disconnect_while_the_app_streams_the_llm_answer(upstream, receiver):
    from tests.apps import fastapi_app

    app = fastapi_app(upstream.openrouter)
    app.add_middleware(LLMTracingMiddleware, settings=make_settings(upstream, otlp(receiver)))
    with serve_asgi(app) as url:
        host, port = url.removeprefix("http://").split(":")
        body = b'{"model":"m","stream":true,"messages":[{"role":"user","content":"long answer"}]}'
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(
                b"POST /relay HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"x-fake-chunk-delay-ms: 100\r\nx-fake-chunks: 100\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            assert sock.recv(100).startswith(b"HTTP/1.1 200")
        # the client is gone; the app's relay is cancelled and closes the LLM stream
        deadline = time.monotonic() + 10
        spans = []
        while time.monotonic() < deadline and not spans:
            or_middleware.force_flush()
            spans = [s for s in receiver.spans if s.scope == "or_middleware"]
            time.sleep(0.1)
    assert len(spans) == 1
    assert spans[0].attributes["or_middleware.stream.outcome"] in ("abandoned", "error")


def test_spans_end_once_under_concurrent_close_and_gc(upstream, traced):
    """close() racing the finalizer: one span per call, never two."""
    client = httpx.Client()
    responses = [
        client.send(client.build_request("POST", f"{upstream.openrouter}/chat/completions", json=stream_body()),
                    stream=True)
        for _ in range(5)
    ]
    threads = [threading.Thread(target=r.close) for r in responses]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    del responses
    gc.collect()
    traced(5)
    client.close()


@pytest.mark.parametrize("stream", [False, True])
def test_gzip_encoded_responses_are_decoded_for_parsing_only(upstream, traced, stream):
    body = stream_body() if stream else chat_body("zip me")
    with httpx.Client() as client, client.stream("POST", f"{upstream.openrouter}/chat/completions", json=body,
                                                 headers={"x-fake-scenario": "gzip"}) as response:
        raw = b"".join(response.iter_raw())
    assert response.headers["content-encoding"] == "gzip"
    assert raw[:2] == b"\x1f\x8b"  # the app still gets the encoded bytes httpx would give it
    span = traced()[0]
    assert span.status_code == "UNSET"
    assert span.attributes["gen_ai.usage.output_tokens"] > 0
    assert span.attributes["gen_ai.response.finish_reasons"] == ["stop"]
