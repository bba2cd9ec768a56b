"""Apps that already have OpenTelemetry: their own SDK provider and instrumentations
(FastAPIInstrumentor, HTTPXClientInstrumentor, RequestsInstrumentor) and other GenAI
instrumentations (OpenInference, OpenLLMetry). One coherent trace: one server span, the GenAI
span and the HTTP client span in a parent/child order, nothing orphaned in either backend,
and no GenAI span twice for one call unless asked for."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
from flask import Flask
from flask import request as flask_request
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.util._once import Once

import or_middleware
from or_middleware import LLMTracingMiddleware, LLMTracingWSGIMiddleware
from tests.apps import AUTH, chat_body, fastapi_app
from tests.conftest import make_settings, otlp
from tests.support.real_servers import REPO_ROOT, free_port, serve_command, venv_command
from tests.support.servers import serve_asgi, serve_wsgi


@pytest.fixture
def app_exporter() -> Iterator[InMemorySpanExporter]:
    """The app's own OpenTelemetry setup: a global SDK provider exporting to memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "their-app"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    saved = trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE
    trace._TRACER_PROVIDER_SET_ONCE = Once()  # the global may be set once per process: reset for this test
    trace.set_tracer_provider(provider)
    yield exporter
    provider.shutdown()
    trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE = saved


def hex_id(span_id: int) -> str:
    return f"{span_id:016x}"


def assert_no_orphans(spans: list[ReadableSpan]) -> None:
    ids = {s.context.span_id for s in spans}
    for s in spans:
        if s.parent is not None and not s.parent.is_remote:
            assert s.parent.span_id in ids, f"{s.name} has a parent this backend never received"


def test_fastapi_and_httpx_instrumentors_give_one_coherent_trace(upstream, receiver, app_exporter):
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    app = fastapi_app(upstream.openrouter)
    app.add_middleware(LLMTracingMiddleware, settings=make_settings(upstream, otlp(receiver, privacy_mode=False)))
    FastAPIInstrumentor.instrument_app(app)
    HTTPXClientInstrumentor().instrument()
    try:
        with serve_asgi(app) as url:
            answer = httpx.post(f"{url}/ask", json=chat_body("CANARY-COEXIST"), headers={"x-user-id": "ann"})
            assert answer.status_code == 200
            assert or_middleware.force_flush()
    finally:
        HTTPXClientInstrumentor().uninstrument()
        FastAPIInstrumentor.uninstrument_app(app)
    [ours] = receiver.wait_for_spans(lambda s: s.scope == "or_middleware")
    assert not [s for s in receiver.spans if s.kind == "SERVER"], "the app's server span is the only one"
    theirs = app_exporter.get_finished_spans()
    [server] = [s for s in theirs if s.kind == SpanKind.SERVER]
    # GenAI span: child of their server span; their HTTP client span: child of our GenAI span
    assert ours.trace_id == f"{server.context.trace_id:032x}"
    assert ours.parent_span_id == hex_id(server.context.span_id)
    [http_client] = [s for s in theirs if s.instrumentation_scope.name == "opentelemetry.instrumentation.httpx"
                     and "/chat/completions" in str(s.attributes.get("url.full", s.attributes.get("http.url")))]
    assert hex_id(http_client.parent.span_id) == ours.span_id
    # their backend got our GenAI span too (without content), so nothing there is orphaned
    [forwarded] = [s for s in theirs if s.instrumentation_scope.name == "or_middleware"]
    assert hex_id(forwarded.context.span_id) == ours.span_id
    assert forwarded.attributes["user.id"] == "ann"
    assert "CANARY-COEXIST" in ours.attributes["gen_ai.input.messages"]
    assert not any("CANARY" in str(v) for v in forwarded.attributes.values())
    assert_no_orphans(list(theirs))
    # OpenRouter's broadcast spans will nest under the GenAI span
    assert upstream.received[-1].json["trace"]["parent_span_id"] == ours.span_id


def test_requests_instrumentor_with_the_wsgi_middleware(upstream, receiver, app_exporter):
    """RequestsInstrumentor wraps ``Session.send``, above the adapter we hook: its HTTP span is
    the parent of our GenAI span, both under our server span, in both backends."""
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    app = Flask(__name__)

    @app.post("/ask")
    def ask() -> Any:
        r = requests.post(f"{upstream.openrouter}/chat/completions", json=flask_request.get_json(), headers=AUTH,
                          timeout=30)
        return r.content, r.status_code, {"content-type": "application/json"}

    app.wsgi_app = LLMTracingWSGIMiddleware(app.wsgi_app,  # type: ignore[method-assign]
                                            settings=make_settings(upstream, otlp(receiver, spans="all")))
    RequestsInstrumentor().instrument()
    try:
        with serve_wsgi(app) as url:
            assert httpx.post(f"{url}/ask", json=chat_body("via requests")).status_code == 200
            assert or_middleware.force_flush()
    finally:
        RequestsInstrumentor().uninstrument()
    [ours] = receiver.wait_for_spans(lambda s: s.scope == "or_middleware")
    [server] = receiver.wait_for_spans(lambda s: s.kind == "SERVER")
    theirs = app_exporter.get_finished_spans()
    [http_client] = [s for s in theirs if s.instrumentation_scope.name.startswith("opentelemetry.instrumentation.req")]
    assert ours.parent_span_id == hex_id(http_client.context.span_id)
    assert hex_id(http_client.parent.span_id) == server.span_id
    assert len([s for s in theirs if s.kind == SpanKind.SERVER]) == 1  # ours, handed over
    assert_no_orphans(list(theirs))


# OpenLLMetry's uninstrument() leaves its wrapper on openai 3.x (Completions.create stays wrapped),
# which would leak its spans into every later test: each scenario runs in its own interpreter.
SCENARIO = """
import json, sys
import openai
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
import or_middleware
from or_middleware import LLMTracingMiddleware, Settings
from or_middleware.config import OtlpDestination

instrumentation, deduplicate, base, traces_url = sys.argv[1:5]
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
LLMTracingMiddleware(Starlette(), settings=Settings(
    destinations=[OtlpDestination(endpoint=traces_url, schedule_delay_ms=50)],
    llm_hosts=f"openrouter={base}", deduplicate=deduplicate))
if instrumentation == "openinference":
    from openinference.instrumentation.openai import OpenAIInstrumentor
else:
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor
OpenAIInstrumentor().instrument()
completion = openai.OpenAI(base_url=base, api_key="k").chat.completions.create(
    model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "dedupe me"}])
or_middleware.force_flush()
theirs = [s for s in exporter.get_finished_spans() if s.instrumentation_scope.name != "or_middleware"]
print(json.dumps({"id": completion.id, "theirs": [f"{s.context.span_id:016x}" for s in theirs]}))
"""


@pytest.mark.parametrize("instrumentation", ["openinference", "openllmetry"])
@pytest.mark.parametrize("deduplicate", ["auto", "off"])
def test_another_genai_instrumentation_is_not_doubled(upstream, receiver, instrumentation, deduplicate):
    module = "openinference.instrumentation.openai" if instrumentation == "openinference" else \
        "opentelemetry.instrumentation.openai"
    pytest.importorskip(module)
    run = subprocess.run([sys.executable, "-c", SCENARIO, instrumentation, deduplicate, upstream.openrouter,
                          receiver.traces_url], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert len(result["theirs"]) == 1, "their instrumentation made exactly one span for the call"
    [their_span] = result["theirs"]
    sent = upstream.received[-1].json
    if deduplicate == "auto":
        assert not [s for s in receiver.spans if s.scope == "or_middleware"]
        # still linked: OpenRouter's spans nest under the other instrumentation's span
        assert sent["trace"]["parent_span_id"] == their_span
    else:
        [ours] = receiver.wait_for_spans(lambda s: s.scope == "or_middleware")
        assert ours.parent_span_id == their_span
        assert ours.attributes["gen_ai.response.id"] == result["id"]
        assert sent["trace"]["parent_span_id"] == ours.span_id


PLAIN_APP = """
import os

import httpx
from fastapi import FastAPI

app = FastAPI()


@app.post("/ask")
async def ask(body: dict) -> dict:
    async with httpx.AsyncClient() as client:
        answer = await client.post(os.environ["LLM_BASE_URL"] + "/chat/completions", json=body)
    return answer.json()
"""


@pytest.mark.parametrize("app", ["no-code-change", "with-middleware"])
def test_opentelemetry_instrument_loads_our_hook(upstream, receiver, content_receiver, tmp_path, app):
    """``opentelemetry-instrument uvicorn app:app``: their FastAPI server span, our GenAI span
    under it in both backends, and the app needs no code change (our entry point installs the hook)."""
    theirs = content_receiver  # a second receiver, standing for the app's own OTLP backend
    (tmp_path / "plain_app.py").write_text(PLAIN_APP)
    port = free_port()
    target = "plain_app:app" if app == "no-code-change" else "examples.fastapi_app:app"
    env = {
        "PYTHONPATH": str(tmp_path),
        "OTEL_SERVICE_NAME": "their-app",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": theirs.traces_url,
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "openai",  # OpenLLMetry/OpenInference: another test's subject
        "OR_MIDDLEWARE_DESTINATIONS": "otlp",
        "OR_MIDDLEWARE_OTLP__ENDPOINT": receiver.traces_url,
        "OR_MIDDLEWARE_OTLP__SCHEDULE_DELAY_MS": "50",
        "OR_MIDDLEWARE_LLM_HOSTS": f"openrouter={upstream.openrouter}",
        "LLM_BASE_URL": upstream.openrouter,
    }
    argv = [venv_command("opentelemetry-instrument"), venv_command("uvicorn"), target, "--port", str(port),
            "--log-level", "warning"]
    with serve_command(argv, port, env) as url:
        answer = httpx.post(f"{url}/ask", json={**chat_body("hello"), "question": "hello"},
                            headers={"x-user-id": "zoe"}, timeout=30)
        assert answer.status_code == 200, answer.text
        [ours] = receiver.wait_for_spans(lambda s: s.scope == "or_middleware")
        [server] = theirs.wait_for_spans(lambda s: s.kind == "SERVER" and s.name.endswith("/ask"))
        [forwarded] = theirs.wait_for_spans(lambda s: s.scope == "or_middleware")
    assert not [s for s in receiver.spans if s.kind == "SERVER"], "no second server span"
    assert ours.trace_id == server.trace_id and ours.parent_span_id == server.span_id
    assert forwarded.span_id == ours.span_id
    assert upstream.received[-1].json["trace"]["parent_span_id"] == ours.span_id
    if app == "no-code-change":  # the httpx instrumentation's client span nests under our GenAI span
        [http_client] = theirs.wait_for_spans(lambda s: s.kind == "CLIENT" and s.scope.endswith("httpx"))
        assert http_client.parent_span_id == ours.span_id
    else:  # the middleware adds the request identity
        assert ours.attributes["user.id"] == "zoe"


@pytest.mark.parametrize(("attributes", "is_model_call"), [
    ({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"}, True),  # openai-v2, Logfire
    ({"gen_ai.operation.name": "embeddings"}, True),
    ({"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"}, False),  # calls happen inside
    ({"gen_ai.operation.name": "execute_tool"}, False),
    ({"llm.request.type": "chat", "gen_ai.system": "openai"}, True),  # OpenLLMetry
    ({"traceloop.span.kind": "workflow", "gen_ai.system": "openai"}, False),
    ({"openinference.span.kind": "LLM"}, True),
    ({"openinference.span.kind": "CHAIN", "gen_ai.system": "openai"}, False),
    ({"http.request.method": "POST"}, False),
    ({}, False),
])
def test_which_spans_count_as_another_instrumentations_llm_call(attributes, is_model_call):
    from or_middleware.coexistence import foreign_genai_span

    tracer = TracerProvider().get_tracer("someone.else")
    with tracer.start_as_current_span("span", attributes=attributes) as span:
        assert (foreign_genai_span() is span) is is_model_call
    with trace.use_span(trace.NonRecordingSpan(span.get_span_context())):
        assert foreign_genai_span() is None  # a span nobody records cannot hold a GenAI span


def test_our_middleware_outside_the_apps_own_asgi_instrumentation(upstream, receiver, app_exporter):
    """Wrapping the whole app (Django, Litestar style) around an app that instruments itself:
    ours is the server span, theirs becomes its INTERNAL child, and their backend gets ours."""
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    inner = fastapi_app(upstream.openrouter)
    inner.add_middleware(OpenTelemetryMiddleware)  # the app's own ASGI instrumentation, global provider
    app = LLMTracingMiddleware(inner, settings=make_settings(upstream, otlp(receiver, spans="all")))
    with serve_asgi(app) as url:
        assert httpx.post(f"{url}/ask", json=chat_body("outer")).status_code == 200
        assert or_middleware.force_flush()
    [ours] = receiver.wait_for_spans(lambda s: s.scope == "or_middleware")
    [server] = receiver.wait_for_spans(lambda s: s.kind == "SERVER")
    theirs = app_exporter.get_finished_spans()
    # one SERVER span in their backend too, and it is ours (handed over)
    assert [hex_id(s.context.span_id) for s in theirs if s.kind == SpanKind.SERVER] == [server.span_id]
    [their_request] = [s for s in theirs if s.instrumentation_scope.name == "opentelemetry.instrumentation.asgi"
                       and s.kind == SpanKind.INTERNAL and s.name == "POST /ask"]
    assert hex_id(their_request.parent.span_id) == server.span_id
    assert ours.parent_span_id == hex_id(their_request.context.span_id)
    assert_no_orphans(list(theirs))
