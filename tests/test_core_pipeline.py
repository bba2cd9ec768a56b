"""The core pipeline end to end: real uvicorn/waitress servers, real clients, fake upstream, OTLP receiver."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from opentelemetry import trace

import or_middleware
from or_middleware import LLMTracingMiddleware, LLMTracingWSGIMiddleware
from or_middleware.demo.serving import serve_asgi
from tests.apps import chat_body, fastapi_app, flask_app
from tests.conftest import make_settings, otlp
from tests.support.servers import serve_wsgi

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CLIENT_SPAN_ID}-01"
IDENTITY = {"x-user-id": "alice", "x-session-id": "sess-42", "traceparent": TRACEPARENT}


def is_genai(span) -> bool:
    return span.scope == "or_middleware"


def is_server(span) -> bool:
    return span.kind == "SERVER"


def traced_app(upstream, *destinations, **options):
    app = fastapi_app(upstream.openrouter, other_url=f"{upstream.url}/not-an-llm")
    app.add_middleware(LLMTracingMiddleware, settings=make_settings(upstream, *destinations, **options))
    return app


def test_genai_span_is_child_of_server_span_and_linked_into_the_openrouter_body(upstream, receiver):
    app = traced_app(upstream, otlp(receiver))
    with serve_asgi(app) as url:
        answer = httpx.post(f"{url}/ask", json=chat_body("hello there"), headers=IDENTITY)
        assert answer.status_code == 200
        assert or_middleware.force_flush()
    server = receiver.wait_for_spans(is_server)[0]
    genai = receiver.wait_for_spans(is_genai)[0]
    # incoming traceparent -> server span -> GenAI span
    assert server.trace_id == TRACE_ID and server.parent_span_id == CLIENT_SPAN_ID
    assert genai.trace_id == TRACE_ID and genai.parent_span_id == server.span_id
    assert genai.kind == "CLIENT"
    assert genai.name == "chat openai/gpt-4o-mini"
    a = genai.attributes
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openrouter"
    assert a["gen_ai.request.model"] == "openai/gpt-4o-mini"
    upstream_answer = answer.json()
    assert a["gen_ai.response.id"] == upstream_answer["id"]
    assert a["gen_ai.response.model"] == upstream_answer["model"]
    assert a["gen_ai.usage.input_tokens"] == upstream_answer["usage"]["prompt_tokens"]
    assert a["gen_ai.usage.output_tokens"] == upstream_answer["usage"]["completion_tokens"]
    assert a["gen_ai.usage.cost"] == pytest.approx(upstream_answer["usage"]["cost"])
    assert a["or_middleware.cost.source"] == "provider"
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert a["http.response.status_code"] == 200
    assert a["user.id"] == "alice" and a["session.id"] == "sess-42"
    assert a["gen_ai.conversation.id"] == "sess-42"
    assert genai.status_code != "ERROR"
    # what OpenRouter received: our trace and span, the user and session
    sent = upstream.received[-1]
    assert sent.json["trace"]["trace_id"] == TRACE_ID
    assert sent.json["trace"]["parent_span_id"] == genai.span_id
    assert sent.json["trace"]["generation_name"] == genai.name
    assert sent.json["user"] == "alice" and sent.json["session_id"] == "sess-42"
    assert sent.headers["traceparent"] == f"00-{TRACE_ID}-{genai.span_id}-01"
    assert int(sent.headers["content-length"]) == len(sent.body)
    assert sent.headers["authorization"].startswith("Bearer sk-or-v1-")  # untouched
    # API keys are never exported
    assert all(b"CANARYKEY" not in r.body for r in receiver.requests)


def test_keys_the_app_set_are_kept_and_become_trace_metadata(upstream, receiver):
    app = traced_app(upstream, otlp(receiver))
    body = chat_body("hi", user="bob", trace={"trace_name": "checkout", "order": "A-17", "tier": 3})
    with serve_asgi(app) as url:
        httpx.post(f"{url}/ask", json=body, headers=IDENTITY).raise_for_status()
        or_middleware.force_flush()
    sent = upstream.received[-1].json
    assert sent["user"] == "bob"  # the app's own value wins
    assert sent["session_id"] == "sess-42"
    assert sent["trace"]["trace_name"] == "checkout"
    assert sent["trace"]["order"] == "A-17" and sent["trace"]["tier"] == 3
    assert sent["trace"]["trace_id"] == TRACE_ID
    genai = receiver.wait_for_spans(is_genai)[0]
    assert genai.attributes["trace.name"] == "checkout"
    assert genai.attributes["trace.metadata.order"] == "A-17"
    assert genai.attributes["trace.metadata.tier"] == "3"
    assert genai.attributes["user.id"] == "bob"


def test_identity_reaches_sync_threadpool_handlers(upstream, receiver):
    app = traced_app(upstream, otlp(receiver))
    with serve_asgi(app) as url:
        httpx.post(f"{url}/ask-sync", json=chat_body("sync"), headers=IDENTITY).raise_for_status()
        or_middleware.force_flush()
    genai = receiver.wait_for_spans(is_genai)[0]
    server = receiver.wait_for_spans(is_server)[0]
    assert genai.parent_span_id == server.span_id
    assert genai.attributes["user.id"] == "alice"
    assert upstream.received[-1].json["session_id"] == "sess-42"


def test_concurrent_requests_keep_their_own_identity(upstream, receiver):
    app = traced_app(upstream, otlp(receiver))
    users = [f"user-{i}" for i in range(12)]
    with serve_asgi(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        import concurrent.futures

        def one(user: str) -> None:
            route = "/ask-sync" if user.endswith(("1", "3", "5")) else "/ask"
            client.post(route, json=chat_body(f"I am {user}"), headers={"x-user-id": user}).raise_for_status()

        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            list(pool.map(one, users))
        or_middleware.force_flush()
    genai = receiver.wait_for_spans(is_genai, count=len(users))
    servers = {s.span_id: s for s in receiver.wait_for_spans(is_server, count=len(users))}
    for span in genai:
        user = span.attributes["user.id"]
        assert json.loads(json.dumps(span.attributes)).get("user.id") == user
        assert span.parent_span_id in servers
        assert servers[span.parent_span_id].trace_id == span.trace_id
    for request in upstream.received:
        text = request.json["messages"][0]["content"]
        assert text == f"I am {request.json['user']}"


def test_non_llm_calls_get_no_genai_span(upstream, receiver):
    app = traced_app(upstream, otlp(receiver))
    with serve_asgi(app) as url:
        assert httpx.get(f"{url}/not-llm").json() == {"status": 404}
        or_middleware.force_flush()
    receiver.wait_for_spans(is_server)
    assert not [s for s in receiver.spans if is_genai(s)]


def test_privacy_mode_destination_never_sees_the_prompt(upstream, receiver, content_receiver):
    canary = "CANARY-PROMPT-7f3a"
    app = traced_app(upstream, otlp(receiver), otlp(content_receiver, "otlp_content", privacy_mode=False))
    body = chat_body(f"my secret is {canary}")
    body["messages"].insert(0, {"role": "system", "content": "CANARY-SYSTEM-1b2c"})
    with serve_asgi(app) as url:
        httpx.post(f"{url}/ask", json=body, headers=IDENTITY).raise_for_status()
        or_middleware.force_flush()
    receiver.wait_for_spans(is_genai)
    open_span = content_receiver.wait_for_spans(is_genai)[0]
    private_bytes = b"".join(r.body for r in receiver.requests)
    assert canary.encode() not in private_bytes
    assert b"CANARY-SYSTEM" not in private_bytes
    assert b"Echo" not in private_bytes  # the completion
    assert canary in open_span.attributes["gen_ai.input.messages"]
    assert "CANARY-SYSTEM-1b2c" in open_span.attributes["gen_ai.system_instructions"]
    assert "Echo" in open_span.attributes["gen_ai.output.messages"]
    for r in receiver.requests + content_receiver.requests:
        assert b"CANARYKEY" not in r.body


def test_genai_destination_gets_only_genai_spans(upstream, receiver, content_receiver):
    app = traced_app(upstream, otlp(receiver, spans="genai"), otlp(content_receiver, "otlp_all", spans="all"))
    with serve_asgi(app) as url:
        httpx.post(f"{url}/ask", json=chat_body("x"), headers=IDENTITY).raise_for_status()
        httpx.get(f"{url}/not-llm").raise_for_status()
        or_middleware.force_flush()
    content_receiver.wait_for_spans(is_server, count=2)
    assert [s.name for s in receiver.wait_for_spans()] == ["chat openai/gpt-4o-mini"]


def test_openai_sdk_calls_are_traced(upstream, receiver):
    app = traced_app(upstream, otlp(receiver))
    with serve_asgi(app) as url:
        answer = httpx.post(f"{url}/ask-sdk", json=chat_body("from the sdk"), headers=IDENTITY, timeout=30)
        assert answer.status_code == 200, answer.text
        or_middleware.force_flush()
    genai = receiver.wait_for_spans(is_genai)[0]
    assert genai.attributes["gen_ai.response.id"] == answer.json()["id"]
    assert upstream.received[-1].json["trace"]["parent_span_id"] == genai.span_id


def test_streaming_passes_through_and_the_span_ends_with_the_stream(upstream, receiver):
    app = traced_app(upstream, otlp(receiver))
    body = chat_body("stream this please", stream=True)
    with serve_asgi(app) as url:
        with httpx.stream("POST", f"{url}/relay", json=body, headers={"x-fake-chunk-delay-ms": "0"}) as r:
            relayed = b"".join(r.iter_raw())
        or_middleware.force_flush()
    assert relayed.rstrip().endswith(b"data: [DONE]")
    genai = receiver.wait_for_spans(is_genai)[0]
    assert genai.attributes["gen_ai.request.stream"] is True
    assert genai.end_time_unix_nano > genai.start_time_unix_nano


def _replay(app, requests: list[tuple[str, dict]]) -> list[bytes]:
    outputs = []
    with serve_asgi(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        for route, body in requests:
            with client.stream("POST", route, json=body, headers=IDENTITY) as response:
                outputs.append(f"{response.status_code}".encode() + b"|" + b"".join(response.iter_raw()))
    return outputs


def test_responses_are_byte_identical_with_and_without_the_middleware(receiver):
    from or_middleware.demo.fake_upstream import create_fake_upstream

    calls = [
        ("/ask", chat_body("one")),
        ("/ask-sync", chat_body("two", max_tokens=2)),
        ("/relay", chat_body("three four five", stream=True)),
        ("/ask", chat_body("error please", model="fake/error_429")),
    ]
    results = []
    for instrumented in (False, True):
        fake = create_fake_upstream()
        with serve_asgi(fake) as fake_url:
            app = fastapi_app(f"{fake_url}/api/v1")
            if instrumented:
                settings = make_settings(_Bases(fake_url), otlp(receiver))
                app.add_middleware(LLMTracingMiddleware, settings=settings)
            results.append(_replay(app, calls))
    bare, traced = results
    normalise = [_without_created(b) for b in bare], [_without_created(t) for t in traced]
    assert normalise[0] == normalise[1]
    assert len(bare) == 4 and b"429" in bare[3][:3]


class _Bases:
    def __init__(self, url: str) -> None:
        self.url = url
        self.openrouter = f"{url}/api/v1"
        self.openai = f"{url}/v1"
        self.anthropic = url.replace("127.0.0.1", "localhost")


def _without_created(output: bytes) -> bytes:
    """The fake stamps wall-clock seconds into `created`; everything else must match to the byte."""
    import re

    return re.sub(rb'"created": ?\d+', b'"created":0', output)


def test_uninstrument_restores_httpx_and_instrument_is_idempotent(upstream, receiver):
    original = httpx.HTTPTransport.handle_request
    app = traced_app(upstream, otlp(receiver))
    patched = httpx.HTTPTransport.handle_request
    assert patched is not original or getattr(original, "__or_middleware_original__", None)
    or_middleware.instrument()
    assert httpx.HTTPTransport.handle_request is patched  # idempotent
    or_middleware.uninstrument()
    restored = httpx.HTTPTransport.handle_request
    assert getattr(restored, "__or_middleware_original__", None) is None
    with serve_asgi(app) as url:
        httpx.post(f"{url}/ask", json=chat_body("untraced"), headers=IDENTITY).raise_for_status()
        or_middleware.force_flush()
        receiver.wait_for_spans(is_server)
        assert not [s for s in receiver.spans if is_genai(s)]
        assert "trace" not in upstream.received[-1].json
        or_middleware.instrument()
        httpx.post(f"{url}/ask", json=chat_body("traced again"), headers=IDENTITY).raise_for_status()
        or_middleware.force_flush()
    receiver.wait_for_spans(is_genai)


def test_flask_under_a_real_wsgi_server_gets_the_same_spans(upstream, receiver):
    app = flask_app(upstream.openrouter)
    app.wsgi_app = LLMTracingWSGIMiddleware(app.wsgi_app, settings=make_settings(upstream, otlp(receiver)))
    with serve_wsgi(app) as url:
        answer = httpx.post(f"{url}/ask", json=chat_body("flask"), headers=IDENTITY)
        assert answer.status_code == 200
        with httpx.stream("POST", f"{url}/relay", json=chat_body("flask stream", stream=True), headers=IDENTITY) as r:
            relayed = b"".join(r.iter_raw())
        assert relayed.rstrip().endswith(b"[DONE]")
        or_middleware.force_flush()
    servers = receiver.wait_for_spans(is_server, count=2)
    genai = receiver.wait_for_spans(is_genai, count=2)
    server_ids = {s.span_id for s in servers}
    for span in genai:
        assert span.trace_id == TRACE_ID
        assert span.parent_span_id in server_ids
        assert span.attributes["user.id"] == "alice"
    assert upstream.received[-1].json["session_id"] == "sess-42"
    assert upstream.received[-1].json["trace"]["trace_id"] == TRACE_ID


def test_spans_are_flushed_on_lifespan_shutdown(upstream, receiver):
    slow = otlp(receiver)
    slow.schedule_delay_ms = 60_000  # nothing would be exported for a minute unless shutdown flushes
    app = traced_app(upstream, slow)
    with serve_asgi(app) as url:
        httpx.post(f"{url}/ask", json=chat_body("bye"), headers=IDENTITY).raise_for_status()
        time.sleep(0.2)
        assert not receiver.spans
    receiver.wait_for_spans(is_genai, timeout=5)


def test_the_global_tracer_provider_is_left_alone(upstream, receiver):
    before = trace.get_tracer_provider()
    traced_app(upstream, otlp(receiver))
    assert trace.get_tracer_provider() is before
