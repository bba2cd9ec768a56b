"""Every preset against local receivers: exact ingest path, auth header format, resource and
dialect attributes, after a real request through a real app (uvicorn, httpx, fake upstream)."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

import or_middleware
from or_middleware import LLMTracingMiddleware, Settings
from or_middleware.config import (
    ArizeDestination,
    BraintrustDestination,
    ConsoleDestination,
    GrafanaDestination,
    LangfuseDestination,
    LangSmithDestination,
    OtlpDestination,
    PhoenixDestination,
    PostHogDestination,
    SigNozDestination,
)
from or_middleware.demo.serving import serve_asgi
from or_middleware.export.openinference import PRIVACY_PLACEHOLDER
from tests.apps import chat_body, fastapi_app
from tests.support.capture_receiver import CaptureReceiver
from tests.support.otlp_receiver import OTLPGrpcReceiver, OTLPReceiver

IDENTITY = {"x-user-id": "alice", "x-session-id": "sess-42"}
TRACE = {"trace_name": "checkout", "order": "A-17"}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def is_genai(span) -> bool:
    return span.scope == "or_middleware"


def run_app(upstream, destinations, **options) -> None:
    """One plain and one streamed chat call through a traced FastAPI app, then flush."""
    hosts = f"openrouter={upstream.openrouter}"
    settings = Settings(service_name="shop", destinations=destinations, llm_hosts=hosts, **options)
    app = fastapi_app(upstream.openrouter)
    app.add_middleware(LLMTracingMiddleware, settings=settings)
    with serve_asgi(app) as url:
        httpx.post(f"{url}/ask", json=chat_body("hello there", trace=TRACE), headers=IDENTITY).raise_for_status()
        body = chat_body("stream it", stream=True, trace=TRACE)
        with httpx.stream("POST", f"{url}/relay", json=body, headers={**IDENTITY, "x-fake-chunk-delay-ms": "5"}) as r:
            r.read()
        assert or_middleware.force_flush()


def trace_requests(receiver) -> list:
    """The trace exports a receiver got (metrics exports of the same destination go elsewhere)."""
    return [r for r in receiver.requests if "metrics" not in r.path.lower()]


def common(tmp_path) -> dict:
    # metrics=False: metrics exports (issue 5) are tested on their own; here only traces are looked at
    return {"schedule_delay_ms": 20, "spool_dir": str(tmp_path), "metrics": False}


@pytest.fixture
def receivers():
    opened = []

    def open_one():
        rx = OTLPReceiver()
        opened.append(rx.__enter__())
        return rx

    yield open_one
    for rx in opened:
        rx.close()


def test_otlp_presets_send_to_their_path_with_their_auth_resource_and_dialect(upstream, receivers, tmp_path):
    rx = {name: receivers() for name in ("grafana", "langsmith", "langfuse", "signoz", "arize", "phoenix",
                                         "braintrust")}
    run_app(upstream, [
        GrafanaDestination(endpoint=rx["grafana"].url, instance_id="123456", api_token="glc_token", **common(tmp_path)),
        LangSmithDestination(api_key="lsv2_pt_key", project="shop-prod", endpoint=rx["langsmith"].url,
                             **common(tmp_path)),
        LangfuseDestination(public_key="pk-lf-1", secret_key="sk-lf-secret", host=rx["langfuse"].url,
                            **common(tmp_path)),
        SigNozDestination(ingestion_key="sz-key", endpoint=rx["signoz"].traces_url, **common(tmp_path)),
        ArizeDestination(api_key="ak-key", space_id="U3BhY2U6MQ==", project="shop-ai", base_url=rx["arize"].url,
                         **common(tmp_path)),
        PhoenixDestination(endpoint=rx["phoenix"].traces_url, project="shop-phx", **common(tmp_path)),
        BraintrustDestination(api_key="bt-key", project_id="p-123", base_url=rx["braintrust"].url,
                              **common(tmp_path)),
    ])
    expected = {
        "grafana": ("/otlp/v1/traces", {"authorization": basic("123456", "glc_token")}),
        "langsmith": ("/otel/v1/traces", {"x-api-key": "lsv2_pt_key", "langsmith-project": "shop-prod"}),
        "langfuse": ("/api/public/otel/v1/traces", {"authorization": basic("pk-lf-1", "sk-lf-secret"),
                                                    "x-langfuse-ingestion-version": "4"}),
        "signoz": ("/v1/traces", {"signoz-ingestion-key": "sz-key"}),
        "arize": ("/v1/traces", {"authorization": "ak-key", "arize-space-id": "U3BhY2U6MQ=="}),
        "phoenix": ("/v1/traces", {}),
        "braintrust": ("/otel/v1/traces", {"authorization": "Bearer bt-key", "x-bt-parent": "project_id:p-123"}),
    }
    for name, (path, headers) in expected.items():
        rx[name].wait_for_spans(is_genai, count=2)
        traces = trace_requests(rx[name])
        assert traces, name
        for request in traces:
            assert request.path == path, name
            assert request.headers["content-type"] == "application/x-protobuf", name
            for key, value in headers.items():
                assert request.headers.get(key) == value, (name, key)
        if not headers:
            assert "authorization" not in traces[0].headers
    # trace backends get the server spans too; LLM platforms only GenAI spans, as roots
    assert any(s.kind == "SERVER" for s in rx["grafana"].spans)
    assert any(s.kind == "SERVER" for s in rx["signoz"].spans)
    for name in ("braintrust",):
        assert all(is_genai(s) for s in rx[name].spans), name
        assert all(s.parent_span_id is None for s in rx[name].spans), name
    # SPANS=traces: the request's root span with its LLM calls nested
    for name in ("arize", "phoenix", "langsmith", "langfuse"):
        roots = {s.span_id for s in rx[name].spans if s.kind == "SERVER"}
        assert len(roots) == 2 and all(s.parent_span_id in roots for s in rx[name].spans if is_genai(s)), name
    grafana_genai = rx["grafana"].wait_for_spans(is_genai)[0]
    assert grafana_genai.parent_span_id is not None  # kept under its server span

    for name in rx:
        for span in rx[name].spans:
            assert span.resource["service.name"] == "shop"

    arize = rx["arize"].wait_for_spans(is_genai)[0]
    assert arize.resource["openinference.project.name"] == "shop-ai"
    assert rx["phoenix"].spans[0].resource["openinference.project.name"] == "shop-phx"
    a = arize.attributes
    semconv = next(s for s in rx["grafana"].spans if is_genai(s) and s.name == arize.name).attributes
    assert a["openinference.span.kind"] == "LLM"
    assert a["llm.model_name"] == semconv["gen_ai.response.model"]
    assert a["llm.provider"] == "openrouter" and a["llm.system"] == "openai"
    assert a["llm.token_count.prompt"] == semconv["gen_ai.usage.input_tokens"]
    assert a["llm.token_count.completion"] == semconv["gen_ai.usage.output_tokens"]
    assert a["llm.token_count.total"] == semconv["gen_ai.usage.input_tokens"] + semconv["gen_ai.usage.output_tokens"]
    assert a["llm.cost.total"] == pytest.approx(semconv["gen_ai.usage.cost"])
    assert a["session.id"] == "sess-42" and a["user.id"] == "alice"
    metadata = json.loads(a["metadata"])
    assert metadata["order"] == "A-17" and metadata["cost_usd"] == pytest.approx(semconv["gen_ai.usage.cost"])
    assert json.loads(a["llm.invocation_parameters"])["model"] == "openai/gpt-4o-mini"
    assert not any(key.startswith(("gen_ai.", "trace.", "or_middleware.")) for key in a)  # what Phoenix reads only
    assert a["input.value"] == a["output.value"] == PRIVACY_PLACEHOLDER  # privacy mode (the default)
    root = next(s for s in rx["arize"].spans if s.span_id == arize.parent_span_id)
    assert root.attributes["openinference.span.kind"] == "CHAIN" and root.status_code == "OK"
    assert root.attributes["user.id"] == "alice" and root.attributes["session.id"] == "sess-42"

    langfuse = {s.attributes["gen_ai.request.stream"]: s.attributes for s in rx["langfuse"].spans if is_genai(s)}
    for span in rx["langfuse"].spans:  # SPANS=traces: the request's root carries the trace level
        if span.kind == "SERVER":
            assert span.attributes["langfuse.user.id"] == "alice"
            assert span.attributes["langfuse.session.id"] == "sess-42"
            assert span.attributes["langfuse.trace.name"] == "checkout"
            assert "langfuse.trace.input" not in span.attributes and "langfuse.trace.output" not in span.attributes
    for span in rx["langsmith"].spans:
        if span.kind == "SERVER":
            assert span.attributes["langsmith.span.kind"] == "chain"
            assert span.attributes["langsmith.trace.session_id"] == "sess-42"
            assert span.attributes["langsmith.metadata.user_id"] == "alice"
            assert "gen_ai.prompt" not in span.attributes and "gen_ai.completion" not in span.attributes
    plain, streamed = langfuse[False], langfuse[True]
    assert plain["langfuse.observation.type"] == "generation"
    assert plain["langfuse.user.id"] == "alice" and plain["langfuse.session.id"] == "sess-42"
    assert plain["langfuse.trace.name"] == "checkout"
    assert plain["langfuse.trace.metadata.order"] == "A-17"
    assert plain["gen_ai.usage.cost"] > 0
    assert json.loads(plain["langfuse.observation.cost_details"])["total"] == pytest.approx(plain["gen_ai.usage.cost"])
    assert "langfuse.observation.completion_start_time" not in plain
    assert streamed["langfuse.observation.completion_start_time"].endswith("Z")
    assert "langfuse.observation.input" not in plain

    smith = rx["langsmith"].wait_for_spans(is_genai)[0].attributes
    assert smith["langsmith.span.kind"] == "llm"
    assert smith["langsmith.trace.session_id"] == "sess-42"
    assert smith["langsmith.metadata.user_id"] == "alice"
    assert smith["langsmith.metadata.order"] == "A-17"
    assert smith["gen_ai.system"] == "openrouter"
    assert "gen_ai.prompt" not in smith and "gen_ai.completion" not in smith

    braintrust = rx["braintrust"].wait_for_spans(is_genai)[0].attributes
    assert "openinference.span.kind" not in braintrust and "langfuse.observation.type" not in braintrust


def test_dialects_carry_content_only_when_privacy_mode_is_off(upstream, receivers, tmp_path):
    phoenix, langfuse, langsmith = receivers(), receivers(), receivers()
    run_app(upstream, [
        PhoenixDestination(endpoint=phoenix.traces_url, privacy_mode=False, **common(tmp_path)),
        LangfuseDestination(public_key="pk", secret_key="sk", host=langfuse.url, privacy_mode=False,
                            **common(tmp_path)),
        LangSmithDestination(api_key="k", endpoint=langsmith.url, privacy_mode=False, **common(tmp_path)),
    ])
    oi = phoenix.wait_for_spans(lambda s: is_genai(s) and "stream" not in s.attributes["llm.invocation_parameters"])
    root = next(s for s in phoenix.spans if s.span_id == oi[0].parent_span_id).attributes
    oi = oi[0].attributes
    assert root["input.value"] == "hello there" and "hello there" in root["output.value"]  # the request's I/O
    assert oi["llm.input_messages.0.message.role"] == "user"
    assert oi["llm.input_messages.0.message.content"] == "hello there"
    assert oi["llm.output_messages.0.message.role"] == "assistant"
    assert "hello there" in oi["llm.output_messages.0.message.content"]
    assert json.loads(oi["input.value"])["messages"][0]["content"] == "hello there"
    assert oi["input.mime_type"] == "application/json"
    assert "hello there" in oi["output.value"]
    lf = langfuse.wait_for_spans(is_genai)[0].attributes
    assert json.loads(lf["langfuse.observation.input"])[0]["role"] == "user"
    assert "Echo" in lf["langfuse.observation.output"]
    ls = langsmith.wait_for_spans(is_genai)[0].attributes
    assert json.loads(ls["gen_ai.prompt"])["messages"][0]["role"] == "user"
    assert "Echo" in ls["gen_ai.completion"]


@pytest.mark.parametrize("protocol", ["http/json", "http/protobuf", "grpc"])
def test_otlp_protocols(upstream, tmp_path, protocol):
    receiver = OTLPGrpcReceiver() if protocol == "grpc" else OTLPReceiver()
    with receiver:
        endpoint = receiver.url if protocol == "grpc" else receiver.traces_url
        run_app(upstream, [OtlpDestination(endpoint=endpoint, protocol=protocol, headers="x-team=ai%20lab",
                                           **common(tmp_path))])
        genai = receiver.wait_for_spans(is_genai, count=2)
        server = receiver.wait_for_spans(lambda s: s.kind == "SERVER", count=2)
    request = trace_requests(receiver)[0]
    assert request.headers["x-team"] == "ai lab"
    if protocol == "grpc":
        assert request.path.endswith("TraceService/Export")
    else:
        assert request.path == "/v1/traces"
        expected_type = "application/json" if protocol == "http/json" else "application/x-protobuf"
        assert request.headers["content-type"] == expected_type
        assert request.error is None
    assert {s.parent_span_id for s in genai} <= {s.span_id for s in server}
    assert genai[0].attributes["gen_ai.usage.cost"] > 0


def test_otlp_honours_the_standard_otel_variables(upstream, receivers, tmp_path, monkeypatch):
    receiver = receivers()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20tok123,x-scope=ai")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    run_app(upstream, [OtlpDestination(**common(tmp_path))])
    receiver.wait_for_spans(is_genai, count=2)
    request = trace_requests(receiver)[0]
    assert request.path == "/v1/traces"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["content-encoding"] == "gzip"
    assert request.headers["authorization"] == "Bearer tok123"
    assert request.headers["x-scope"] == "ai"


def test_posthog_gets_ai_generation_events_through_the_batch_api(upstream, tmp_path):
    with CaptureReceiver() as posthog:
        run_app(upstream, [PostHogDestination(api_key="phc_project_key", host=posthog.url, **common(tmp_path))])
        requests = posthog.wait_for_requests()
    events = [e for r in requests for e in r.json["batch"]]
    assert all(r.path == "/batch/" for r in requests)
    assert all(r.json["api_key"] == "phc_project_key" for r in requests)
    assert all(r.headers["content-type"] == "application/json" for r in requests)
    assert len(events) == 2 and {e["event"] for e in events} == {"$ai_generation"}
    plain = next(e for e in events if e["properties"]["$ai_stream"] is False)
    p = plain["properties"]
    assert plain["distinct_id"] == "alice"
    assert len(p["$ai_trace_id"]) == 32 and len(p["$ai_span_id"]) == 16
    assert "$ai_parent_id" not in p  # SPANS=genai: the GenAI span is the root
    assert p["$ai_model"] == "openai/gpt-4o-mini"
    assert p["$ai_provider"] == "openrouter"
    assert p["$ai_input_tokens"] > 0 and p["$ai_output_tokens"] > 0
    assert p["$ai_total_cost_usd"] > 0
    assert p["$ai_latency"] > 0
    assert p["$ai_is_error"] is False
    assert p["$ai_session_id"] == "sess-42"
    assert p["$ai_http_status"] == 200
    assert p["order"] == "A-17"
    assert "$ai_input" not in p and "$ai_output_choices" not in p  # privacy mode
    assert plain["timestamp"].endswith("+00:00") and plain["uuid"]


def test_destinations_by_env_with_a_second_instance_of_a_kind(upstream, receivers, tmp_path, monkeypatch):
    first, second, langfuse = receivers(), receivers(), receivers()
    monkeypatch.setenv("OR_MIDDLEWARE_DESTINATIONS", "otlp,otlp_backup,langfuse")
    monkeypatch.setenv("OR_MIDDLEWARE_SPOOL_DIR", str(tmp_path))
    monkeypatch.setenv("OR_MIDDLEWARE_OTLP__ENDPOINT", first.traces_url)
    monkeypatch.setenv("OR_MIDDLEWARE_OTLP__SCHEDULE_DELAY_MS", "20")
    monkeypatch.setenv("OR_MIDDLEWARE_OTLP_BACKUP__ENDPOINT", second.traces_url)
    monkeypatch.setenv("OR_MIDDLEWARE_OTLP_BACKUP__PROTOCOL", "http/json")
    monkeypatch.setenv("OR_MIDDLEWARE_OTLP_BACKUP__SPANS", "genai")
    monkeypatch.setenv("OR_MIDDLEWARE_LANGFUSE__PUBLIC_KEY", "pk-env")
    monkeypatch.setenv("OR_MIDDLEWARE_LANGFUSE__SECRET_KEY", "sk-env")
    monkeypatch.setenv("OR_MIDDLEWARE_LANGFUSE__HOST", langfuse.url)
    monkeypatch.setenv("OR_MIDDLEWARE_LLM_HOSTS", f"openrouter={upstream.openrouter}")
    app = fastapi_app(upstream.openrouter)
    app.add_middleware(LLMTracingMiddleware)
    with serve_asgi(app) as url:
        httpx.post(f"{url}/ask", json=chat_body("env"), headers=IDENTITY).raise_for_status()
        or_middleware.force_flush()
    first.wait_for_spans(lambda s: s.kind == "SERVER")
    assert [s.name for s in second.wait_for_spans()] == ["chat openai/gpt-4o-mini"]
    assert trace_requests(second)[0].headers["content-type"] == "application/json"
    assert langfuse.wait_for_spans()[0].attributes["langfuse.observation.type"] == "generation"
    assert trace_requests(langfuse)[0].headers["authorization"] == basic("pk-env", "sk-env")
    assert set(or_middleware.stats()) >= {"otlp", "otlp_backup", "langfuse"}
    assert or_middleware.stats()["otlp_backup"]["exported"] == 1


def test_console_prints_the_span_tree(upstream, capsys):
    run_app(upstream, [ConsoleDestination(schedule_delay_ms=20)])
    err = capsys.readouterr().err
    assert "POST /ask [SERVER]" in err
    assert "chat openai/gpt-4o-mini [CLIENT]" in err
    assert "user alice" in err and "session sess-42" in err
