"""The GenAI span kept live on the request path (no SDK span) exports exactly what the SDK span did."""

from __future__ import annotations

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor

import or_middleware
from or_middleware import LLMTracingMiddleware
from or_middleware.capture.live_span import LiveSpan
from or_middleware.demo.serving import serve_asgi
from or_middleware.runtime import live_runtimes
from tests.apps import chat_body, fastapi_app
from tests.conftest import make_settings, otlp

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
# differ from call to call whichever the path
VARYING = {"gen_ai.response.id", "gen_ai.response.time_to_first_chunk", "trace.metadata.openrouter.first_token_ms",
           "or_middleware.stream.output_tokens_per_second"}

SERVER_VARYING = {"net.peer.port", "net.host.port", "http.host", "http.url", "http.server_name"}  # ports differ


class Watching(SpanProcessor):
    """Another processor on our provider (as a test capture is): the GenAI span must be an SDK span."""

    def on_end(self, span):
        pass


def _calls(upstream, receiver, *, sdk: bool, body: dict, route: str = "/ask", status: int = 200):
    app = fastapi_app(upstream.openrouter)
    app.add_middleware(LLMTracingMiddleware, settings=make_settings(upstream, otlp(receiver, spans="all")))
    with serve_asgi(app) as url:
        runtime = live_runtimes()[-1]
        if sdk:
            runtime.tracer_provider.add_span_processor(Watching())
        assert runtime.records_directly() is not sdk
        answer = httpx.post(f"{url}{route}", json=body, headers={"traceparent": TRACEPARENT, "x-user-id": "alice"})
        assert answer.status_code == status
        assert or_middleware.force_flush()
    [genai] = receiver.wait_for_spans(lambda s: s.scope == "or_middleware", count=1)
    [server] = receiver.wait_for_spans(lambda s: s.kind == "SERVER", count=1)
    receiver.clear()
    or_middleware.shutdown_all()
    return genai, server


@pytest.mark.parametrize(("body", "status"), [
    (chat_body("hello there", max_tokens=5, temperature=0.5, stop=["a", 1], trace={"k": {"n": [1, "x"]}}), 200),
    (chat_body("hello", stream=True), 200),
    (chat_body("hello", model="fake/error_500"), 500),
])
def test_the_live_span_exports_what_the_sdk_span_did(upstream, receiver, body, status):
    live, live_server = _calls(upstream, receiver, sdk=False, body=body, status=status)
    sdk, sdk_server = _calls(upstream, receiver, sdk=True, body=body, status=status)
    for span, server in ((live, live_server), (sdk, sdk_server)):
        assert span.parent_span_id == server.span_id and span.trace_id == server.trace_id
        assert span.start_time_unix_nano <= span.end_time_unix_nano
    assert (live.name, live.kind, live.status_code, live.status_message, live.events, live.resource) == \
        (sdk.name, sdk.kind, sdk.status_code, sdk.status_message, sdk.events, sdk.resource)
    assert list(live.attributes) == list(sdk.attributes)  # same keys, same order
    assert {k: v for k, v in live.attributes.items() if k not in VARYING} == \
        {k: v for k, v in sdk.attributes.items() if k not in VARYING}
    # the request's server span too (a live one without another processor)
    assert (live_server.name, live_server.kind, live_server.status_code, live_server.parent_span_id,
            live_server.events, live_server.resource, list(live_server.attributes)) == \
        (sdk_server.name, sdk_server.kind, sdk_server.status_code, sdk_server.parent_span_id,
         sdk_server.events, sdk_server.resource, list(sdk_server.attributes))
    assert {k: v for k, v in live_server.attributes.items() if k not in SERVER_VARYING} == \
        {k: v for k, v in sdk_server.attributes.items() if k not in SERVER_VARYING}


def test_a_span_started_inside_the_call_nests_under_the_live_span(upstream, receiver):
    seen = []

    class Transport(httpx.AsyncBaseTransport):
        def __init__(self):
            self._inner = httpx.AsyncHTTPTransport()

        async def handle_async_request(self, request):
            current = trace.get_current_span()
            seen.append((type(current), current.get_span_context().span_id, current.is_recording()))
            current.set_attribute("app.note", "set by the app")
            return await self._inner.handle_async_request(request)

    app = fastapi_app(upstream.openrouter)

    @app.post("/own-transport")
    async def own_transport():
        async with httpx.AsyncClient(transport=Transport()) as client:
            reply = await client.post(f"{upstream.openrouter}/chat/completions", json=chat_body("hi"))
        return reply.json()

    app.add_middleware(LLMTracingMiddleware, settings=make_settings(upstream, otlp(receiver, privacy_mode=False)))
    with serve_asgi(app) as url:
        assert httpx.post(f"{url}/own-transport").status_code == 200
        assert or_middleware.force_flush()
    [genai] = receiver.wait_for_spans(lambda s: s.scope == "or_middleware", count=1)
    [(kind, span_id, recording)] = seen
    assert kind is LiveSpan and recording and f"{span_id:016x}" == genai.span_id
    assert genai.attributes["app.note"] == "set by the app"


def test_span_limits_apply_to_the_live_span(upstream, receiver, monkeypatch):
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "6")
    live, _ = _calls(upstream, receiver, sdk=False, body=chat_body("hello"))
    sdk, _ = _calls(upstream, receiver, sdk=True, body=chat_body("hello"))
    assert len(live.attributes) == len(sdk.attributes) == 7  # the limit, then the analysis stage's prompt hash
    assert list(live.attributes) == list(sdk.attributes)


def test_an_app_error_marks_the_live_server_span(upstream, receiver):
    """An exception from the app: the live server span gets status ERROR and an exception event,
    as the SDK span did; the app's own exception reaches the server unchanged."""
    app = fastapi_app(upstream.openrouter)

    @app.get("/fails")
    async def fails():
        raise RuntimeError("the app's own failure")

    app.add_middleware(LLMTracingMiddleware, settings=make_settings(upstream, otlp(receiver, spans="all")))
    with serve_asgi(app) as url:
        assert live_runtimes()[-1].records_directly()
        assert httpx.get(f"{url}/fails").status_code == 500
        assert or_middleware.force_flush()
    [server] = receiver.wait_for_spans(lambda s: s.kind == "SERVER", count=1)
    assert server.status_code == "ERROR" and "RuntimeError" in server.status_message
    assert [e["name"] for e in server.events] == ["exception"]


def test_hostile_calls_on_the_live_spans_never_raise_and_a_canary_error_stays_out_of_privacy_mode(
        upstream, receiver):
    canary = "canary-live-9d1c"

    class Loud:
        def __str__(self):
            raise ValueError("no text")

    class Transport(httpx.AsyncBaseTransport):
        def __init__(self):
            self._inner = httpx.AsyncHTTPTransport()

        async def handle_async_request(self, request):
            span = trace.get_current_span()
            span.set_attribute(["unhashable"], 1)  # type: ignore[arg-type]
            span.set_attributes(None)  # type: ignore[arg-type]
            span.add_event("e", attributes=42)  # type: ignore[arg-type]
            span.record_exception(Loud())  # type: ignore[arg-type]
            for n in range(3000):  # past its bound: the oldest go
                span.set_attribute(f"app.k{n}", canary)
            return await self._inner.handle_async_request(request)

    app = fastapi_app(upstream.openrouter)

    @app.post("/hostile")
    async def hostile():
        async with httpx.AsyncClient(transport=Transport()) as client:
            reply = await client.post(f"{upstream.openrouter}/chat/completions", json=chat_body("hi"))
        return reply.json()

    @app.post("/fail")
    async def fail():
        raise RuntimeError(f"the app failed with {canary}")

    app.add_middleware(LLMTracingMiddleware, settings=make_settings(upstream, otlp(receiver, spans="all")))
    with serve_asgi(app) as url:
        assert live_runtimes()[-1].records_directly()
        assert httpx.post(f"{url}/hostile").status_code == 200  # nothing raised into the app's transport
        assert httpx.post(f"{url}/fail").status_code == 500
        assert or_middleware.force_flush()
    [genai] = receiver.wait_for_spans(lambda s: s.scope == "or_middleware", count=1)
    servers = receiver.wait_for_spans(lambda s: s.kind == "SERVER", count=2)
    assert [s.status_code for s in servers] == ["UNSET", "ERROR"]
    assert canary not in str((genai, servers))  # privacy mode: unknown attributes, exception text dropped


def test_a_bug_making_the_finished_span_is_contained_and_later_spans_still_flow(upstream, receiver, monkeypatch,
                                                                                 caplog):
    import logging

    from or_middleware.capture import call as call_module
    from or_middleware.capture.live_span import LiveSpan

    monkeypatch.setattr(call_module, "_logged", set())
    real = LiveSpan.finished
    calls = {"n": 0}

    def first_fails(self, *args):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("injected: a bug of ours")
        return real(self, *args)

    monkeypatch.setattr(LiveSpan, "finished", first_fails)
    caplog.set_level(logging.WARNING, logger="or_middleware")
    app = fastapi_app(upstream.openrouter)
    app.add_middleware(LLMTracingMiddleware, settings=make_settings(upstream, otlp(receiver)))
    with serve_asgi(app) as url:
        for _ in range(3):
            assert httpx.post(f"{url}/ask", json=chat_body("hello")).status_code == 200
        assert or_middleware.force_flush()
    assert len(receiver.wait_for_spans(lambda s: s.scope == "or_middleware", count=2)) >= 2
    assert [r for r in caplog.records if "internal error in finished span" in r.getMessage()]


def test_a_caller_that_samples_out_gets_no_live_spans_exported(upstream, receiver):
    """SPANS=all, a caller's traceparent with the sampled flag off: as with SDK spans (parent-based
    sampling), neither the server span nor the GenAI span is recorded; the app answers as ever."""
    app = fastapi_app(upstream.openrouter)
    app.add_middleware(LLMTracingMiddleware, settings=make_settings(upstream, otlp(receiver, spans="all")))
    unsampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
    with serve_asgi(app) as url:
        assert live_runtimes()[-1].records_directly()
        assert httpx.post(f"{url}/ask", json=chat_body("hi"), headers={"traceparent": unsampled}).status_code == 200
        assert httpx.post(f"{url}/ask", json=chat_body("hi")).status_code == 200
        assert or_middleware.force_flush()
    genai = receiver.wait_for_spans(lambda s: s.scope == "or_middleware", count=1)
    servers = receiver.wait_for_spans(lambda s: s.kind == "SERVER", count=1)
    assert {s.trace_id for s in genai} == {s.trace_id for s in servers}  # the second request's only
    assert "0af7651916cd43dd8448eb211c80319c" not in {s.trace_id for s in receiver.spans}
