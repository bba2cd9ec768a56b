"""Concurrency and isolation: many requests at once, nothing crosses between them.

200 concurrent requests to a real app (async handlers, sync handlers in Starlette's threadpool,
relayed streams; each with its own traceparent, user and session) and 100 to a WSGI app under a
threaded server. For every request: its GenAI span is a child of its own server span in its own
trace; the upstream got its own text, trace id, parent span id, user and session; the app's
answer echoes its own text; and no attribute of any span mentions another request.
"""

from __future__ import annotations

import concurrent.futures
import json
import random
from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

import or_middleware
from or_middleware import LLMTracingMiddleware, LLMTracingWSGIMiddleware
from or_middleware.demo.fake_upstream import ReceivedRequest, create_fake_upstream
from or_middleware.demo.serving import serve_asgi
from tests.apps import chat_body, flask_app
from tests.conftest import make_settings, otlp
from tests.support.otlp_receiver import OTLPReceiver, ReceivedSpan
from tests.support.servers import serve_wsgi


class Bases:
    def __init__(self, url: str) -> None:
        self.url = url
        self.openrouter = f"{url}/api/v1"
        self.openai = f"{url}/v1"
        self.anthropic = url.replace("127.0.0.1", "localhost")


def marks(i: int) -> dict[str, str]:
    """What identifies request i anywhere: zero-padded, so request 1 is never a prefix of request 10."""
    return {"user": f"user-{i:04d}", "session": f"sess-{i:04d}", "text": f"question-{i:04d}",
            "trace_id": f"{0xA0000000 + i:08x}" + "0" * 20 + f"{i:04x}"}


def request_of(span: ReceivedSpan) -> int:
    return int(span.attributes["user.id"].removeprefix("user-"))


def strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)


def check_isolation(count: int, receiver: OTLPReceiver, received: list[ReceivedRequest],
                    answers: dict[int, bytes]) -> None:
    assert or_middleware.force_flush(30_000)
    genai = receiver.wait_for_spans(lambda s: s.scope == "or_middleware", count=count, timeout=30)
    servers = {s.span_id: s for s in receiver.wait_for_spans(lambda s: s.kind == "SERVER", count=count, timeout=30)}
    assert len(genai) == count
    all_marks = {i: marks(i) for i in range(count)}
    genai_by_request: dict[int, ReceivedSpan] = {}
    for span in genai:
        i = request_of(span)
        assert i not in genai_by_request, f"two GenAI spans for request {i}"
        genai_by_request[i] = span
        mine = all_marks[i]
        assert span.trace_id == mine["trace_id"]
        server = servers[span.parent_span_id]  # the parent is a server span ...
        assert server.trace_id == mine["trace_id"]  # ... of this very request
        assert span.attributes["session.id"] == mine["session"]
        assert mine["text"] in span.attributes["gen_ai.input.messages"]
        assert mine["text"] in span.attributes["gen_ai.output.messages"]
        text = "\n".join(strings(span.attributes)) + span.name
        for j in _neighbours(i, count):
            other = all_marks[j]
            assert other["user"] not in text and other["session"] not in text and other["text"] not in text, (i, j)
    assert sorted(genai_by_request) == list(range(count))
    assert len(received) == count
    for got in received:
        body = got.json
        i = int(body["user"].removeprefix("user-"))
        mine = all_marks[i]
        assert body["messages"][0]["content"] == mine["text"]
        assert body["session_id"] == mine["session"]
        assert body["trace"]["trace_id"] == mine["trace_id"]
        assert body["trace"]["parent_span_id"] == genai_by_request[i].span_id
        assert got.headers["traceparent"].split("-")[1] == mine["trace_id"]
    for i, answer in answers.items():
        assert all_marks[i]["text"].encode() in answer
        for j in _neighbours(i, count):
            assert all_marks[j]["text"].encode() not in answer


def _neighbours(i: int, count: int) -> list[int]:
    """Every other request (for counts this small, checking all of them is cheap enough)."""
    return [j for j in range(count) if j != i]


def shared_client_app(llm_base: str) -> Any:
    """The app most services are: one long-lived client per kind, its connections reused by
    every request (so isolation cannot lean on a client or a connection per request)."""
    app = FastAPI()
    shared: dict[str, Any] = {"sync": httpx.Client(timeout=60)}

    def async_client() -> httpx.AsyncClient:
        if "async" not in shared:  # made inside the server's event loop, on first use
            shared["async"] = httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=100))
        return shared["async"]

    @app.post("/ask")
    async def ask(request: Request) -> Response:
        upstream = await async_client().post(f"{llm_base}/chat/completions", json=await request.json())
        return Response(upstream.content, status_code=upstream.status_code, media_type="application/json")

    @app.post("/ask-sync")
    def ask_sync(body: dict[str, Any]) -> Response:  # Starlette's threadpool
        upstream = shared["sync"].post(f"{llm_base}/chat/completions", json=body)
        return Response(upstream.content, status_code=upstream.status_code, media_type="application/json")

    @app.post("/relay")
    async def relay(request: Request) -> StreamingResponse:
        client = async_client()
        delay = {"x-fake-chunk-delay-ms": request.headers.get("x-fake-chunk-delay-ms", "0")}
        upstream = await client.send(client.build_request(
            "POST", f"{llm_base}/chat/completions", json=await request.json(), headers=delay), stream=True)

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in upstream.aiter_raw():
                    yield chunk
            finally:
                await upstream.aclose()

        return StreamingResponse(chunks(), media_type="text/event-stream")

    return app


def _call(client: httpx.Client, i: int, route: str) -> tuple[int, bytes]:
    m = marks(i)
    headers = {"x-user-id": m["user"], "x-session-id": m["session"],
               "traceparent": f"00-{m['trace_id']}-{i + 1:016x}-01", "x-fake-chunk-delay-ms": "5"}
    body = chat_body(m["text"], stream=route == "/relay")
    with client.stream("POST", route, json=body, headers=headers) as response:
        assert response.status_code == 200, response.read()
        return i, b"".join(response.iter_raw())


@pytest.mark.heavy
def test_200_concurrent_asgi_requests_never_cross(receiver):
    count = 200
    routes = ["/ask", "/ask-sync", "/relay"]
    plan = [(i, routes[i % 3]) for i in range(count)]
    random.Random(7).shuffle(plan)
    fake = create_fake_upstream()
    with serve_asgi(fake) as fake_url:
        app = shared_client_app(f"{fake_url}/api/v1")
        settings = make_settings(Bases(fake_url), otlp(receiver, spans="all", privacy_mode=False,
                                                       max_queue_size=10_000))
        app.add_middleware(LLMTracingMiddleware, settings=settings)
        limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
        with serve_asgi(app) as url, httpx.Client(base_url=url, timeout=60, limits=limits) as client, \
                concurrent.futures.ThreadPoolExecutor(64) as pool:
            answers = dict(pool.map(lambda p: _call(client, *p), plan))
        check_isolation(count, receiver, fake.state.received, answers)


@pytest.mark.heavy
def test_100_concurrent_wsgi_requests_never_cross(receiver):
    count = 100
    routes = ["/ask", "/relay"]
    fake = create_fake_upstream()
    with serve_asgi(fake) as fake_url:
        app = flask_app(f"{fake_url}/api/v1")
        settings = make_settings(Bases(fake_url), otlp(receiver, spans="all", privacy_mode=False,
                                                       max_queue_size=10_000))
        app.wsgi_app = LLMTracingWSGIMiddleware(app.wsgi_app, settings=settings)
        with serve_wsgi(app, threads=16) as url, httpx.Client(base_url=url, timeout=60) as client, \
                concurrent.futures.ThreadPoolExecutor(32) as pool:
            answers = dict(pool.map(lambda i: _call(client, i, routes[i % 2]), range(count)))
        check_isolation(count, receiver, fake.state.received, answers)
    assert json.dumps(or_middleware.stats())  # counters stay readable under load


def test_two_middlewares_in_one_process_keep_their_own_spans_and_both_count(receiver, tmp_path):
    """Two apps in one process (mounted sub-apps, an ASGI and a WSGI entry point): each request's
    span comes from its own app's runtime, and ``or_middleware.stats()`` counts both, not the last."""
    fake = create_fake_upstream()
    with serve_asgi(fake) as fake_url:
        apps = []
        for name in ("left", "right"):
            app = shared_client_app(f"{fake_url}/api/v1")
            app.add_middleware(LLMTracingMiddleware, settings=make_settings(
                Bases(fake_url), otlp(receiver, spans="genai", spool_dir=str(tmp_path)), service_name=name))
            apps.append(app)
        with serve_asgi(apps[0]) as left, serve_asgi(apps[1]) as right, httpx.Client(timeout=30) as client:
            for i in range(3):
                client.post(f"{left}/ask", json=chat_body(f"left {i}"), headers={"x-user-id": "l"}).raise_for_status()
            client.post(f"{right}/ask", json=chat_body("right"), headers={"x-user-id": "r"}).raise_for_status()
            assert or_middleware.force_flush(10_000)
    spans = receiver.wait_for_spans(lambda s: s.scope == "or_middleware", count=4)
    assert sorted((s.resource["service.name"], s.attributes["user.id"]) for s in spans) == [
        ("left", "l"), ("left", "l"), ("left", "l"), ("right", "r")]
    assert or_middleware.stats()["otlp"]["exported"] == 4
