"""Adversarial checks of our own server spans (issue 15 P1) through real servers and clients."""

from __future__ import annotations

import httpx
import openai
import pytest

import or_middleware
from or_middleware import LLMTracingWSGIMiddleware
from tests.conftest import make_settings, otlp
from tests.support.servers import serve_wsgi

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"


def _flask_app(upstream, settings):
    import flask

    app = flask.Flask(__name__)
    client = openai.OpenAI(base_url=upstream.openai, api_key="sk-test", max_retries=0)

    @app.post("/fail-while-streaming")
    def fail_while_streaming():
        def body():
            reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
            yield reply.choices[0].message.content.encode()
            raise RuntimeError("broken while streaming")

        return flask.Response(body())

    app.wsgi_app = LLMTracingWSGIMiddleware(app.wsgi_app, settings=settings)
    return app


@pytest.mark.parametrize("spans", ["traces", "all"])
def test_wsgi_exception_while_streaming_marks_the_server_span(upstream, receiver, spans):
    """An exception raised while the server iterates the body is the request's failure: the
    server span (the GenAI span's parent) gets status ERROR and an exception event, as the
    OpenTelemetry WSGI instrumentation's did."""
    app = _flask_app(upstream, make_settings(upstream, otlp(receiver, spans=spans)))
    with serve_wsgi(app) as url, httpx.Client(base_url=url, timeout=30) as client, pytest.raises(httpx.HTTPError):
        client.post("/fail-while-streaming", headers={"traceparent": TRACEPARENT}).read()
    assert or_middleware.force_flush()
    server = receiver.wait_for_spans(lambda s: s.kind == "SERVER", count=1)[0]
    genai = receiver.wait_for_spans(lambda s: s.scope == "or_middleware", count=1)[0]
    assert genai.parent_span_id == server.span_id and server.trace_id == CALLER_TRACE
    assert server.status_code == "ERROR"
    assert [e["name"] for e in server.events] == ["exception"]
    assert server.events[0]["attributes"]["exception.type"].endswith("RuntimeError")


def _fastapi_app(upstream, settings):
    import asyncio

    from fastapi import BackgroundTasks, FastAPI
    from fastapi.responses import StreamingResponse
    from opentelemetry.sdk.trace import TracerProvider

    from or_middleware import LLMTracingMiddleware

    app = FastAPI()
    aclient = openai.AsyncOpenAI(base_url=upstream.openai, api_key="sk-test", max_retries=0)
    sclient = openai.OpenAI(base_url=upstream.openai, api_key="sk-test", max_retries=0)
    apps_own = TracerProvider().get_tracer("the-app")  # the app's own tracing, not ours
    ask = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}

    @app.post("/two")
    async def two():
        await aclient.chat.completions.create(**ask)
        await aclient.chat.completions.create(**ask)
        return {"ok": True}

    @app.post("/gather")
    async def gather():
        await asyncio.gather(aclient.chat.completions.create(**ask), aclient.chat.completions.create(**ask))
        return {"ok": True}

    @app.post("/sync")
    def sync():
        sclient.chat.completions.create(**ask)
        sclient.chat.completions.create(**ask)
        return {"ok": True}

    @app.post("/stream")
    async def stream():
        async def relay():
            chunks = await aclient.chat.completions.create(**ask, stream=True)
            async for chunk in chunks:
                yield (chunk.choices[0].delta.content or "") if chunk.choices else ""

        return StreamingResponse(relay())

    @app.post("/own-span")
    async def own_span():
        with apps_own.start_as_current_span("the app's work"):
            await aclient.chat.completions.create(**ask)
        return {"ok": True}

    @app.post("/later")
    async def later(tasks: BackgroundTasks):
        async def call():
            await aclient.chat.completions.create(**ask)

        tasks.add_task(call)
        return {"ok": True}

    @app.post("/none")
    async def none():
        return {"ok": True}

    app.add_middleware(LLMTracingMiddleware, settings=settings)
    return app


ROUTES = {"/two": 2, "/gather": 2, "/sync": 2, "/stream": 1, "/own-span": 1}


@pytest.mark.parametrize("spans", ["traces", "all"])
def test_asgi_llm_calls_of_one_request_share_one_server_span_in_the_callers_trace(upstream, receiver, spans):
    """Sequential, concurrent (gather) and threadpool calls, a relayed stream, and a call inside a
    span of the app's own tracing: each request's GenAI spans are children of ONE server span in
    the caller's trace, which starts before and ends after them."""
    from tests.support.servers import serve_asgi

    app = _fastapi_app(upstream, make_settings(upstream, otlp(receiver, spans=spans)))
    traces = {}
    with serve_asgi(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        for n, route in enumerate(ROUTES):
            trace_id = f"{n + 1:032x}"
            traces[trace_id] = route
            answer = client.post(route, headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
            assert answer.status_code == 200, answer.text
    assert or_middleware.force_flush()
    genai = receiver.wait_for_spans(lambda s: s.scope == "or_middleware", count=sum(ROUTES.values()))
    servers = {s.span_id: s for s in receiver.wait_for_spans(lambda s: s.kind == "SERVER", count=len(ROUTES))}
    assert len(servers) == len(ROUTES)  # the request under the app's own span too: it made an LLM call
    for trace_id, route in traces.items():
        mine = [s for s in genai if s.trace_id == trace_id]
        assert len(mine) == ROUTES[route], route  # the caller's trace is continued
        if route == "/own-span":  # its parent is the app's own span (exported by the app, not by us)
            assert [s.trace_id for s in servers.values()].count(trace_id) == 1
            continue
        parents = {s.parent_span_id for s in mine if s.parent_span_id in servers}
        assert len(parents) == 1, route
        server = servers[parents.pop()]
        assert server.trace_id == trace_id and server.parent_span_id == "00f067aa0ba902b7"
        for span in mine:
            assert server.start_time_unix_nano <= span.start_time_unix_nano
            assert server.end_time_unix_nano >= span.end_time_unix_nano


def test_asgi_genai_only_server_span_is_not_recorded_but_calls_keep_the_callers_trace(upstream, receiver):
    """Only a SPANS=genai destination, no app provider, no test capture: nobody could see a server
    span, so none is recorded. The GenAI spans still continue the caller's trace, share one parent
    per request (a fresh id, not the caller's), follow the caller's sampling decision, and the
    OpenRouter body linkage names the trace."""
    from or_middleware.export.privacy import ORIGINAL_PARENT
    from or_middleware.runtime import live_runtimes
    from tests.support.servers import serve_asgi

    app = _fastapi_app(upstream, make_settings(upstream, otlp(receiver, spans="genai")))
    with serve_asgi(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        assert client.post("/two", headers={"traceparent": TRACEPARENT}).status_code == 200
        unsampled = "0af7651916cd43dd8448eb211c80319c"
        assert client.post("/two", headers={"traceparent": f"00-{unsampled}-b7ad6b7169203331-00"}).status_code == 200
        assert client.post("/two").status_code == 200  # no caller: a trace of its own
    runtime = live_runtimes()[-1]
    assert not runtime.wants_server_spans()
    assert or_middleware.force_flush()
    genai = receiver.wait_for_spans(lambda s: s.scope == "or_middleware", count=4)
    assert not [s for s in receiver.spans if s.kind == "SERVER"]
    assert not [s for s in genai if s.trace_id == unsampled]  # the caller said: not sampled
    called = [s for s in genai if s.trace_id == CALLER_TRACE]
    own = [s for s in genai if s.trace_id != CALLER_TRACE]
    assert len(called) == 2 and len(own) == 2 and own[0].trace_id == own[1].trace_id
    for pair in (called, own):
        parents = {s.attributes[ORIGINAL_PARENT] for s in pair}
        assert len(parents) == 1 and "00f067aa0ba902b7" not in parents and "0" * 16 not in parents
        assert all(s.parent_span_id is None for s in pair)  # SPANS=genai: roots of the trace
