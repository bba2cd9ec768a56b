"""Our own bugs: an exception injected into each stage of the middleware must never reach the app.

For every stage (request identity, detection, request parsing, linkage, traceparent, the
response observer, stream parsing, span attributes, pricing, span end and its processors,
each destination's pipeline), a real app under a real server makes its calls (async JSON,
sync threadpool JSON, async relayed stream) twice with the stage broken: every answer must be
the answer the app gets without the middleware, the upstream must get the app's own body
(plus, where linkage still works, only our keys), and the failure is logged once — not per call.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import SpanProcessor
from starlette.applications import Starlette

import or_middleware
from or_middleware import LLMTracingMiddleware, LLMTracingWSGIMiddleware
from or_middleware.capture import call as call_module
from or_middleware.demo.fake_upstream import create_fake_upstream
from or_middleware.demo.serving import serve_asgi
from or_middleware.genai import response as response_module
from or_middleware.runtime import live_runtimes
from tests.apps import chat_body, fastapi_app, flask_app
from tests.conftest import make_settings, otlp
from tests.support.servers import serve_wsgi

IDENTITY = {"x-user-id": "ada", "x-session-id": "s-1"}
CALLS = [
    ("/ask", chat_body("async json")),
    ("/ask-sync", chat_body("sync json")),
    ("/relay", chat_body("a relayed stream", stream=True)),
]
OUR_KEYS = ("trace", "user", "session_id")


class Bases:
    def __init__(self, url: str) -> None:
        self.url = url
        self.openrouter = f"{url}/api/v1"
        self.openai = f"{url}/v1"
        self.anthropic = url.replace("127.0.0.1", "localhost")


def _normalise(data: bytes) -> bytes:
    """What legitimately differs between two runs of the fake: its clock and its id counter."""
    data = re.sub(rb'"created": ?\d+', b'"created":0', data)
    return re.sub(rb"gen-\d+-fake|chatcmpl-fake\d+", b"ID", data)


def run_calls(url: str, rounds: int = 2, *, flush: bool = False) -> list[bytes]:
    """Every call twice; ``flush``: each call's spans are exported before the next (one batch each)."""
    out = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(rounds):
            for route, body in CALLS:
                with client.stream("POST", route, json=body, headers=IDENTITY) as response:
                    out.append(_normalise(f"{response.status_code}|".encode() + b"".join(response.iter_raw())))
                if flush:
                    or_middleware.force_flush(5000)
    return out


@pytest.fixture(scope="module")
def fake() -> Any:
    """One fake upstream for the module (a stage's requests are the ones it received after its start)."""
    app = create_fake_upstream()
    with serve_asgi(app) as url:
        app.state.url = url
        yield app


@pytest.fixture(scope="module")
def bare_answers(fake: Any) -> list[bytes]:
    """What the app answers without the middleware (the reference for every stage)."""
    with serve_asgi(fastapi_app(f"{fake.state.url}/api/v1")) as url:
        answers = run_calls(url)
    assert all(a.startswith(b"200|") for a in answers)
    return answers


def boom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("injected: a bug of ours")


def _genai_span_end_raises() -> Any:
    """Span.end raising for our GenAI spans only (the server span's end is OpenTelemetry's business)."""
    from opentelemetry.sdk.trace import Span

    original = Span.end

    def end(self: Any, end_time: int | None = None) -> None:
        scope = self.instrumentation_scope
        if scope is not None and scope.name == "or_middleware":
            raise RuntimeError("injected: a bug of ours")
        original(self, end_time)

    return end


# (stage, the dotted name replaced, by what (default: a function that raises), the log message, as a regex)
STAGES: list[tuple[str, str, Any, str]] = [
    ("identity", "or_middleware.asgi.identity_from_asgi", None, "internal error in request identity"),
    ("detection", "or_middleware.capture.detection.EndpointDetector.match", None, "internal error in detection"),
    ("format_lookup", "or_middleware.capture.call.format_for", None, "internal error in detection"),
    ("request_parsing", "or_middleware.genai.openai_chat.ChatCompletionsFormat.read_request", None,
     "internal error in request parsing"),
    ("prompt_fields", "or_middleware.capture.call.prompt_fields", None, "internal error in request parsing"),
    ("linkage", "or_middleware.capture.call.plan_linkage", None, "internal error in linkage"),
    ("traceparent", "or_middleware.capture.call.LLMCall.traceparent_headers", None, "internal error in call start"),
    ("response_setup", "or_middleware.capture.call.ResponseObserver", None, "internal error in response setup"),
    ("response_feed", "or_middleware.genai.response.ResponseObserver.feed", None,
     "internal error in response parsing"),
    ("response_finish", "or_middleware.genai.response.ResponseObserver.finish", None,
     "internal error in response finish"),
    # the byte-level stream scanning (issue 15 P3): held chunks judged in bulk, settled on close
    ("stream_scan", "or_middleware.genai.scanning.EventScanner.scan", None, "failed to parse an LLM response"),
    ("stream_scanner_feed", "or_middleware.genai.scanning.EventScanner.feed", None,
     "failed to parse an LLM response"),
    ("response_settle", "or_middleware.genai.response.ResponseObserver.settle", None,
     "internal error in response (settle|finish)"),
    ("stream_parser", "or_middleware.genai.openai_chat.ChatStreamReader.on_event", None,
     "failed to parse an LLM response"),
    ("json_parser", "or_middleware.genai.openai_chat.ChatCompletionsFormat.read_response", None,
     "failed to parse an LLM response"),
    ("span_attributes", "or_middleware.spans.record_attributes", None, "internal error in span attributes"),
    ("span_end", "opentelemetry.sdk.trace.Span.end", _genai_span_end_raises, "internal error in span end"),
    # The SDK calls span processors from span.end() without a guard, also for the server span
    # that the ASGI middleware ends: a destination's (or the analysis stage's) bug lands there.
    ("destination_processor", "or_middleware.export.pipeline.DestinationPipeline.on_end", None,
     r"internal error in (DestinationPipeline|GenerationAnalysis)\.on_end"),
    ("destination_processor_start", "or_middleware.export.pipeline.DestinationPipeline.on_start", None,
     r"internal error in (DestinationPipeline|GenerationAnalysis)\.on_start"),
    ("destination_queue", "or_middleware.export.pipeline.PipelineStats.add", None, "could not queue a span"),
    # the exporter thread, batch after batch: selection and privacy, the encoder, the transport
    ("destination_preparation", "or_middleware.export.preparation.SpanPreparation.prepare", None,
     "destination otlp failed to export"),
    ("destination_encoder", "or_middleware.export.encoders.OtlpProtobuf.encode", None,
     "destination otlp failed to export"),
    ("destination_transport", "or_middleware.export.http_transport.HttpTransport.send", None,
     "destination otlp failed to export"),
    # the analysis stage (metrics, security signals), where it exists
    ("analysis_end_span", "or_middleware.analysis.GenerationAnalysis.end_span", None, "internal error in span end"),
    # the live GenAI span (no SDK span: only the analysis stage listens, capture/live_span.py)
    ("live_span_end", "or_middleware.capture.live_span.LiveSpan.end", None, "internal error in span end"),
    ("analysis_end_live", "or_middleware.analysis.GenerationAnalysis.end_live", None, "internal error in span end"),
    ("live_span_description", "or_middleware.capture.call.CallDescription.attributes", None,
     "internal error in span attributes"),
    ("analysis_enqueue", "or_middleware.analysis.GenerationAnalysis._enqueue", None, "internal error in span end"),
    ("analysis_processor", "or_middleware.analysis.GenerationAnalysis.on_end", None,
     r"internal error in \w+\.on_end"),
]


# stages only an SDK GenAI span goes through (with a span processor besides the analysis stage)
SDK_SPAN_STAGES = ("span_end", "analysis_end_span", "destination_processor_start", "analysis_processor")


def fresh_logs_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every once-only log starts afresh, so "once" is this test's."""
    from or_middleware.export import pipeline
    from or_middleware.runtime import ContainedProcessors

    monkeypatch.setattr(call_module, "_logged", set())
    monkeypatch.setattr(response_module, "_logged_parse_error", False)
    monkeypatch.setattr(ContainedProcessors, "_logged", set())
    monkeypatch.setattr(pipeline, "_queue_failures_logged", set())
    if hasattr(pipeline, "_failures_logged"):
        monkeypatch.setattr(pipeline, "_failures_logged", set())


@pytest.fixture
def fresh_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    fresh_logs_again(monkeypatch)


@pytest.mark.parametrize(("stage", "target", "replacement", "message"), STAGES, ids=[s[0] for s in STAGES])
def test_a_bug_in_a_stage_never_reaches_the_app(stage, target, replacement, message, fake, bare_answers, receiver,
                                                monkeypatch, caplog, fresh_logs):
    replacement = replacement() if replacement is not None else boom
    try:
        monkeypatch.setattr(target, replacement)
    except (AttributeError, ImportError):
        pytest.skip(f"{target} is not in this version")  # e.g. the analysis stage before it lands
    monkeypatch.undo()
    fresh_logs_again(monkeypatch)
    fake_url = fake.state.url
    before = len(fake.state.received)
    app = fastapi_app(f"{fake_url}/api/v1")
    app.add_middleware(LLMTracingMiddleware, settings=make_settings(Bases(fake_url), otlp(receiver)))
    if stage in SDK_SPAN_STAGES:  # another processor on our provider: GenAI spans are SDK spans
        app.middleware_stack = app.build_middleware_stack()  # our middleware (and runtime) now
        live_runtimes()[-1].tracer_provider.add_span_processor(SpanProcessor())
    monkeypatch.setattr(target, replacement)
    caplog.set_level(logging.WARNING, logger="or_middleware")
    with serve_asgi(app) as url:
        answers = run_calls(url, flush=stage.startswith("destination_"))
    assert answers == bare_answers  # every call answered exactly as without the middleware
    for (_, sent), got in zip(CALLS * 2, [r.json for r in fake.state.received[before:]], strict=True):
        assert {k: v for k, v in got.items() if k not in OUR_KEYS} == sent  # the app's own body
        if stage in ("linkage", "detection", "format_lookup"):
            assert not set(OUR_KEYS) & set(got)  # unlinked, but sent as the app wrote it
    ours = [r for r in caplog.records if r.name.startswith("or_middleware") and re.search(message, r.getMessage())]
    assert len(ours) == 1, [r.getMessage() for r in caplog.records]  # once, not once per call


def test_a_bug_in_the_wsgi_identity_never_reaches_the_app(receiver, monkeypatch, caplog, fresh_logs):
    monkeypatch.setattr("or_middleware.wsgi.identity_from_wsgi", boom)
    caplog.set_level(logging.WARNING, logger="or_middleware")
    with serve_asgi(create_fake_upstream()) as fake_url:
        app = flask_app(f"{fake_url}/api/v1")
        app.wsgi_app = LLMTracingWSGIMiddleware(app.wsgi_app, settings=make_settings(Bases(fake_url), otlp(receiver)))
        with serve_wsgi(app) as url, httpx.Client(base_url=url, timeout=30) as client:
            for _ in range(3):
                assert client.post("/ask", json=chat_body("wsgi"), headers=IDENTITY).status_code == 200
    ours = [r for r in caplog.records if "internal error in request identity" in r.getMessage()]
    assert len(ours) == 1


def test_a_bug_in_pricing_never_reaches_the_app(upstream, receiver, monkeypatch, caplog, fresh_logs):
    """Pricing runs for answers without their own cost (here OpenAI's, not OpenRouter's)."""
    LLMTracingMiddleware(Starlette(), settings=make_settings(upstream, otlp(receiver)))
    monkeypatch.setattr("or_middleware.genai.cost.price", boom)
    caplog.set_level(logging.WARNING, logger="or_middleware")
    for stream in (False, True, False):
        body = chat_body("price me", model="gpt-4o-mini", stream=stream, stream_options={"include_usage": True})
        with httpx.stream("POST", f"{upstream.openai}/chat/completions", json=body) as response:
            assert response.status_code == 200
            data = b"".join(response.iter_raw())
        assert data.rstrip().endswith(b"[DONE]") if stream else b'"usage"' in data
    assert or_middleware.force_flush(5000)
    spans = receiver.wait_for_spans(lambda s: s.scope == "or_middleware", count=3)
    assert all("gen_ai.usage.input_tokens" in s.attributes and "gen_ai.usage.cost" not in s.attributes for s in spans)
    assert len([r for r in caplog.records if "internal error in pricing" in r.getMessage()]) == 1


def test_a_bug_in_the_rate_limiter_never_reaches_the_app(fake, receiver, monkeypatch, caplog, fresh_logs):
    """With USER_RATE_LIMIT set, the limiter runs before the app on every request (ASGI and WSGI)."""
    monkeypatch.setattr("or_middleware.ratelimit.UserRateLimiter.retry_after", boom)
    caplog.set_level(logging.WARNING, logger="or_middleware")
    settings = make_settings(Bases(fake.state.url), otlp(receiver), user_rate_limit="1000/min")
    asgi_app = fastapi_app(f"{fake.state.url}/api/v1")
    asgi_app.add_middleware(LLMTracingMiddleware, settings=settings)
    wsgi_app = flask_app(f"{fake.state.url}/api/v1")
    wsgi_app.wsgi_app = LLMTracingWSGIMiddleware(wsgi_app.wsgi_app, settings=settings)
    with serve_asgi(asgi_app) as asgi_url, serve_wsgi(wsgi_app) as wsgi_url:
        for url in (asgi_url, wsgi_url):
            for _ in range(2):
                assert httpx.post(f"{url}/ask", json=chat_body("limited?"), headers=IDENTITY).status_code == 200
    assert len([r for r in caplog.records if "internal error in rate limit" in r.getMessage()]) == 1


def test_a_bug_when_the_app_closes_a_stream_early_never_reaches_the_app(fake, receiver, monkeypatch, caplog,
                                                                         fresh_logs):
    """Found by adv15: on_close (run inside the app's ``response.aclose()``, no guard there) settles
    the chunks held for a bulk scan; a bug of ours in that settle was raised into the app's close."""
    from fastapi import FastAPI

    monkeypatch.setattr("or_middleware.genai.response.ResponseObserver.settle", boom)
    caplog.set_level(logging.WARNING, logger="or_middleware")
    upstream_url = f"{fake.state.url}/api/v1/chat/completions"
    app = FastAPI()

    @app.post("/peek")
    async def peek() -> dict[str, int]:  # reads the start of a long stream, then lets go
        body = chat_body(" ".join(["word"] * 300), stream=True, max_tokens=500)
        async with httpx.AsyncClient(timeout=30) as client, client.stream("POST", upstream_url, json=body) as response:
            read = 0
            async for _ in response.aiter_raw():
                read += 1
                if read == 3:
                    break
        return {"read": read}

    app.add_middleware(LLMTracingMiddleware, settings=make_settings(Bases(fake.state.url), otlp(receiver)))
    with serve_asgi(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(2):
            answer = client.post("/peek")
            assert (answer.status_code, answer.json()) == (200, {"read": 3})
    ours = [r for r in caplog.records if "internal error in response settle" in r.getMessage()]
    assert len(ours) == 1
