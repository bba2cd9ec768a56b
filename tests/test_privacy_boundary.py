"""The privacy boundary, end to end through real servers and the openai SDK (issue 11, items 1-3).

1. An app lets ``openai.BadRequestError`` escape (the upstream's 400 body quotes the prompt) and
   writes its own attributes, events and links on our server span. On 154468c the prompt reached
   every privacy-mode sink (the server span's status description and ``exception`` event, PostHog's
   ``$ai_error``). Now a privacy-mode span carries only allowlisted attributes, the exception type
   and nothing else of the app's: canaries are grepped in every byte of every sink.
2. ``REDACT_PII`` with PII after a newline or tab: placeholders, and valid JSON.
3. With ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST=.*``, inbound credential headers
   and ``?api_key=`` never reach any destination (privacy off too), ASGI (uvicorn) and WSGI (waitress).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from flask import Flask
from flask import request as flask_request
from opentelemetry import trace
from opentelemetry.trace import SpanContext, TraceFlags
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import or_middleware
from or_middleware import LLMTracingMiddleware, LLMTracingWSGIMiddleware, Settings
from or_middleware.config import (
    ConsoleDestination,
    LangfuseDestination,
    LangSmithDestination,
    LocalDestination,
    OtlpDestination,
    PhoenixDestination,
    PostHogDestination,
)
from or_middleware.demo.serving import serve_asgi
from or_middleware.export.console import ConsoleTreeExporter
from or_middleware.export.destinations import EXPORTER_FACTORIES
from tests.support.capture_receiver import CaptureReceiver
from tests.support.otlp_grpc import OTLPGrpcReceiver
from tests.support.otlp_receiver import OTLPReceiver
from tests.support.servers import serve_wsgi

PROMPT = "cnry-prompt-7q2w"  # the user's text, echoed by the upstream's 400
CANARIES = {
    "prompt (exception message, status description, error body)": PROMPT,
    "app attribute on the server span": "cnry-appattr-3e4r",
    "app event on the server span": "cnry-appevent-5t6y",
    "app link attribute": "cnry-applink-7u8i",
    "baggage": "cnry-baggage-9o0p",
    "unknown GenAI-looking attribute": "cnry-foreign-1a2s",
}
APP_KEY = "sk-proj-" + "b0b0" * 10


async def rejecting(request: Request) -> JSONResponse:
    """OpenAI's 400 quotes the offending input, as real APIs do."""
    body = await request.json()
    text = body["messages"][-1]["content"]
    return JSONResponse({"error": {"message": f"Invalid prompt: '{text}' is not allowed",
                                   "type": "invalid_request_error", "code": "invalid_prompt"}}, status_code=400)


@pytest.fixture(scope="module")
def rejecting_v1() -> Iterator[str]:
    with serve_asgi(Starlette(routes=[Route("/v1/chat/completions", rejecting, methods=["POST"])])) as url:
        yield f"{url}/v1"


def decorate_current_span() -> None:
    """What other code in the app (or another instrumentation) writes on the request's span."""
    span = trace.get_current_span()
    span.set_attribute("app.note", CANARIES["app attribute on the server span"])
    span.set_attribute("llm.prompts.0.content", CANARIES["unknown GenAI-looking attribute"])
    span.add_event("app.event", {"text": CANARIES["app event on the server span"]})
    other = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    span.add_link(other, {"why": CANARIES["app link attribute"]})


def asgi_app(base: str, settings: Settings) -> Any:
    """A bare ASGI app (no framework error middleware answering first): the exception reaches the
    server span before any response is sent, as with raw ASGI apps and many frameworks."""
    client = openai.AsyncOpenAI(base_url=base, api_key=APP_KEY, max_retries=0)

    async def app(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        decorate_current_span()
        answer = await client.chat.completions.create(  # raises openai.BadRequestError: not caught
            model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": answer.model_dump_json().encode()})

    return LLMTracingMiddleware(app, settings=settings)


def wsgi_app(base: str, settings: Settings) -> Any:
    client = openai.OpenAI(base_url=base, api_key=APP_KEY, max_retries=0)
    app = Flask(__name__)
    app.config["PROPAGATE_EXCEPTIONS"] = True  # the exception leaves Flask: the WSGI server answers 500

    @app.post("/ask")
    def ask() -> Any:
        decorate_current_span()
        assert flask_request.method == "POST"
        return client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}]).model_dump()

    app.wsgi_app = LLMTracingWSGIMiddleware(app.wsgi_app, settings=settings)  # type: ignore[method-assign]
    return app


class Sinks:
    """Every kind of sink, all in privacy mode (the default), all taking every span."""

    def __init__(self, tmp_path: Path) -> None:
        self.otlp = {name: OTLPReceiver().__enter__() for name in ("protobuf", "json", "langfuse", "phoenix",
                                                                   "langsmith")}
        self.grpc = OTLPGrpcReceiver().__enter__()
        self.posthog = CaptureReceiver().__enter__()
        self.store = tmp_path / "store.db"
        self.spool = tmp_path / "spool"

    def destinations(self) -> list[Any]:
        fast: dict[str, Any] = {"schedule_delay_ms": 20, "spool_dir": str(self.spool), "spans": "all"}
        o = self.otlp
        return [
            OtlpDestination(name="otlp", endpoint=o["protobuf"].traces_url, **fast),
            OtlpDestination(name="otlp_json", endpoint=o["json"].traces_url, protocol="http/json", **fast),
            OtlpDestination(name="otlp_grpc", endpoint=self.grpc.url, protocol="grpc", **fast),
            LangfuseDestination(public_key="pk-lf-1", secret_key="sk-lf-1", host=o["langfuse"].url, **fast),
            PhoenixDestination(endpoint=o["phoenix"].traces_url, **fast),
            LangSmithDestination(api_key="lsv2-1", endpoint=o["langsmith"].url, **fast),
            PostHogDestination(api_key="phc_1", host=self.posthog.url, **fast),
            LocalDestination(path=str(self.store), schedule_delay_ms=20),
            ConsoleDestination(schedule_delay_ms=20, spans="all"),
        ]

    def received(self) -> dict[str, bytes]:
        out = {name: b"".join(r.body for r in rx.requests) for name, rx in self.otlp.items()}
        out["grpc"] = b"".join(r.body for r in self.grpc.requests)
        out["posthog"] = b"".join(r.body for r in self.posthog.requests)
        out["store"] = b"".join(p.read_bytes() for p in self.store.parent.glob("store.db*"))
        return out

    def close(self) -> None:
        for rx in (*self.otlp.values(), self.grpc):
            rx.close()
        self.posthog.__exit__(None, None, None)


@pytest.mark.parametrize("server", ["uvicorn", "waitress"])
def test_an_escaping_upstream_error_and_foreign_attributes_never_reach_a_privacy_mode_sink(
        server, rejecting_v1, tmp_path, monkeypatch):
    sinks = Sinks(tmp_path)
    console = io.StringIO()  # the console destination's own output (the server's error log is the app's)
    monkeypatch.setitem(EXPORTER_FACTORIES, "console", lambda dest: ConsoleTreeExporter(out=console))
    try:
        settings = Settings(service_name="boundary", destinations=sinks.destinations(),
                            llm_hosts=f"openai={rejecting_v1}")
        build, serve = (asgi_app, serve_asgi) if server == "uvicorn" else (wsgi_app, serve_wsgi)
        with serve(build(rejecting_v1, settings)) as url:
            answer = httpx.post(f"{url}/ask", json={}, headers={"baggage": f"note={CANARIES['baggage']}"},
                                timeout=30)
            assert answer.status_code == 500  # the app let BadRequestError escape; unchanged by us
            assert or_middleware.force_flush(10_000)
            server_span = lambda s: s.kind == "SERVER"  # noqa: E731
            for rx in (*sinks.otlp.values(), sinks.grpc):
                rx.wait_for_spans(server_span)
            sinks.posthog.wait_for_requests()
            or_middleware.shutdown_all()  # the store and console write everything before we read
        received = sinks.received() | {"console": console.getvalue().encode()}
    finally:
        sinks.close()

    for sink, data in received.items():
        leaked = [label for label, canary in CANARIES.items() if canary.encode() in data]
        assert not leaked, f"{leaked} reached the privacy-mode sink {sink}"
        assert b"b0b0b0b0" not in data, sink  # nor the app's key

    # Controls: the spans arrived, the error is still an error, named by its type.
    for name, rx in sinks.otlp.items():
        span = next(s for s in rx.spans if s.kind == "SERVER")
        # the description (when the server set one) is the exception type alone
        assert span.status_code == "ERROR" and span.status_message.endswith("BadRequestError"), name
        exceptions = [e for e in span.events if e["name"] == "exception"]
        assert exceptions and set(exceptions[0]["attributes"]) <= {"exception.type", "exception.escaped"}, name
        assert exceptions[0]["attributes"]["exception.type"].endswith("BadRequestError"), name
        assert not [e for e in span.events if e["name"] == "app.event"], name
        assert all(not link["attributes"] for link in span.links), name
        assert "app.note" not in span.attributes and span.attributes.get("http.method") == "POST", name
        genai = next(s for s in rx.spans if s.scope == "or_middleware")
        model = genai.attributes.get("gen_ai.request.model") or genai.attributes.get("llm.model_name")  # OpenInference
        assert genai.attributes["error.type"] and model == "gpt-4o-mini", name
    events = [e for r in sinks.posthog.requests for e in r.json["batch"]]
    errors = {e["properties"]["$ai_span_name"]: e["properties"]["$ai_error"] for e in events
              if e["properties"]["$ai_is_error"]}
    assert errors["POST /ask"] == "openai.BadRequestError", errors
    assert b"BadRequestError" in received["console"] or b"ERROR" in received["console"]


def test_without_privacy_mode_the_exception_text_is_kept_for_the_app_to_see(rejecting_v1, receiver):
    """Control for the test above: a destination with privacy off still gets the app's exception."""
    settings = Settings(destinations=[OtlpDestination(endpoint=receiver.traces_url, privacy_mode=False,
                                                      spans="all", schedule_delay_ms=20)],
                        llm_hosts=f"openai={rejecting_v1}")
    with serve_asgi(asgi_app(rejecting_v1, settings)) as url:
        assert httpx.post(f"{url}/ask", json={}, timeout=30).status_code == 500
        assert or_middleware.force_flush(10_000)
    span = receiver.wait_for_spans(lambda s: s.kind == "SERVER")[0]
    exception = next(e for e in span.events if e["name"] == "exception")
    assert PROMPT in exception["attributes"]["exception.message"] and span.attributes["app.note"]


# -- item 2: REDACT_PII on decoded content ------------------------------------------------------------

EMAIL, CARD = "jane.canary@example.com", "4111 1111 1111 1111"


@pytest.mark.parametrize("glue", ["\n", "\t", "\r\n"])
def test_redacted_content_has_placeholders_after_newlines_and_is_valid_json(glue, upstream, receiver):
    settings = Settings(destinations=[OtlpDestination(endpoint=receiver.traces_url, privacy_mode=False,
                                                      redact_pii=True, schedule_delay_ms=20)],
                        llm_hosts=f"openrouter={upstream.openrouter}")
    client = openai.AsyncOpenAI(base_url=upstream.openrouter, api_key="k", max_retries=0)
    text = f"contact:{glue}{EMAIL}{glue}card:{glue}{CARD}"

    async def ask(request: Request) -> JSONResponse:
        answer = await client.chat.completions.create(
            model="openai/gpt-4o-mini", messages=[{"role": "system", "content": text},
                                                  {"role": "user", "content": text}])
        return JSONResponse(answer.model_dump())

    app = LLMTracingMiddleware(Starlette(routes=[Route("/ask", ask, methods=["POST"])]), settings=settings)
    with serve_asgi(app) as url:
        httpx.post(f"{url}/ask", timeout=30).raise_for_status()
        assert or_middleware.force_flush(10_000)
    span = receiver.wait_for_spans(lambda s: s.scope == "or_middleware")[0]
    sent = b"".join(r.body for r in receiver.requests)
    assert EMAIL.encode() not in sent and CARD.encode() not in sent
    for key in ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions"):
        decoded = json.dumps(json.loads(span.attributes[key]))  # valid JSON
        assert "[EMAIL]" in decoded and "[CARD]" in decoded, key


# -- item 3: inbound credentials ----------------------------------------------------------------------

INBOUND = {"authorization": "Bearer inb-" + "a11ce" * 6, "x-api-key": "inb-" + "c0ffee" * 5,
           "cookie": "session=" + "d0d0" * 8, "proxy-authorization": "Basic " + "e1e1" * 8,
           "x-visible": "seen-header-ok", "referer": "https://shop.example/cart?token=" + "9a9a" * 8}
QUERY_KEY = "qk-" + "f1f1" * 8


def _inbound_credentials_reached(sent: bytes) -> list[str]:
    runs = ["a11cea11ce", "c0ffeec0ffee", "d0d0d0d0", "e1e1e1e1", "f1f1f1f1", "9a9a9a9a"]
    return [run for run in runs if run.encode() in sent]


def plain_asgi() -> Any:
    async def hello(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True}, headers={"set-cookie": "sid=" + "d0d0" * 8})

    return Starlette(routes=[Route("/hello", hello)])


def plain_wsgi() -> Any:
    def app(environ: dict, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("content-type", "text/plain"), ("set-cookie", "sid=" + "d0d0" * 8)])
        return [b"ok"]

    return app


@pytest.mark.parametrize("server", ["uvicorn", "waitress"])
@pytest.mark.parametrize("semconv", ["", "http/dup"])
def test_inbound_credentials_never_reach_a_span_whatever_the_capture_variables_say(
        server, semconv, monkeypatch, receiver):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", ".*")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE", ".*")
    if semconv:
        monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", semconv)
    settings = Settings(destinations=[OtlpDestination(endpoint=receiver.traces_url, privacy_mode=False,
                                                      spans="all", schedule_delay_ms=20)])
    if server == "uvicorn":
        app, serve = LLMTracingMiddleware(plain_asgi(), settings=settings), serve_asgi
    else:
        app, serve = LLMTracingWSGIMiddleware(plain_wsgi(), settings=settings), serve_wsgi
    with serve(app) as url:
        httpx.get(f"{url}/hello?x=1&api_key={QUERY_KEY}&access_token={QUERY_KEY}", headers=INBOUND,
                  timeout=30).raise_for_status()
        assert or_middleware.force_flush(10_000)
    span = receiver.wait_for_spans(lambda s: s.kind == "SERVER")[0]
    sent = b"".join(r.body for r in receiver.requests)
    assert not _inbound_credentials_reached(sent), span.attributes
    # Controls: headers were captured, the URL was recorded with its harmless parameter.
    assert span.attributes["http.request.header.x_visible"] == ["seen-header-ok"]
    assert span.attributes["http.request.header.referer"] == ["https://shop.example/cart?token=REDACTED"]
    urls = [str(v) for k, v in span.attributes.items()
            if k == "url.query" or (k in ("http.url", "url.full", "http.target") and "?" in str(v))]
    assert urls and all("x=1" in u and "api_key=REDACTED" in u for u in urls), urls


def test_a_token_in_the_url_path_is_scrubbed_from_the_span_name_and_attributes(receiver):
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
    settings = Settings(destinations=[OtlpDestination(endpoint=receiver.traces_url, privacy_mode=False,
                                                      spans="all", schedule_delay_ms=20)])
    with serve_asgi(LLMTracingMiddleware(plain_asgi(), settings=settings)) as url:
        httpx.get(f"{url}/hello/{jwt}", timeout=30)
        assert or_middleware.force_flush(10_000)
    span = receiver.wait_for_spans(lambda s: s.kind == "SERVER")[0]
    assert b"dozjgNryP4J3" not in b"".join(r.body for r in receiver.requests)
    assert "[SECRET]" in span.name, span.name
