"""Adversarial review of issue 14's destinations: credentials planted where a user may put them
never reach what ``or-middleware check`` or start-up prints."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi import FastAPI, Request
from starlette.responses import JSONResponse

import or_middleware
from or_middleware import LLMTracingMiddleware
from or_middleware.cli import main
from or_middleware.config import PhoenixDestination, Settings
from or_middleware.demo.serving import serve_asgi
from tests.support.otlp_receiver import OTLPReceiver

CANARY_PASSWORD = "CANARYpw7f3a"
CANARY_QUERY = "CANARYq9d1e"


@pytest.mark.parametrize(("names", "variable", "url"), [
    # an http:// webhook off this machine is refused: the refusal quoted the URL as given
    ("webhook", "WEBHOOK__URL", f"http://user:{CANARY_PASSWORD}@example.com/hook?api_key={CANARY_QUERY}"),
    # a URL field that is no http(s) URL: the refusal quoted it as given
    ("datadog", "DATADOG__ENDPOINT", f"ftp://u:{CANARY_PASSWORD}@h.example/x?api_key={CANARY_QUERY}"),
    ("otel-collector", "OTEL_COLLECTOR__ENDPOINT", f"grpcs://u:{CANARY_PASSWORD}@h.example?token={CANARY_QUERY}"),
    # not even a URL: nothing of it can be shown safely
    ("honeycomb", "HONEYCOMB__ENDPOINT", f"u:{CANARY_PASSWORD}@h.example"),
])
def test_a_refused_url_setting_is_named_without_its_credentials(monkeypatch, capsys, names, variable, url):
    monkeypatch.setenv("OR_MIDDLEWARE_DESTINATIONS", names)
    monkeypatch.setenv("OR_MIDDLEWARE_DATADOG__API_KEY", "dd-key-1")
    monkeypatch.setenv("OR_MIDDLEWARE_HONEYCOMB__API_KEY", "hc-key-1")
    monkeypatch.setenv(f"OR_MIDDLEWARE_{variable}", url)
    assert main(["check"]) == 2
    captured = capsys.readouterr()
    printed = captured.out + captured.err
    assert f"OR_MIDDLEWARE_{variable}" in printed  # the line still names the variable
    assert CANARY_PASSWORD not in printed and CANARY_QUERY not in printed


PROMPT_CANARY = "CANARYprompt5e1b"
EMAIL_CANARY = "canary.adv14@example.com"


def test_privacy_mode_phoenix_output_holds_no_prompt_text_anywhere(tmp_path):
    """Phoenix (OpenInference dialect, SPANS=traces) with privacy on: an upstream that echoes the
    prompt in its error message and an app whose exception quotes it; nothing of the prompt (or
    its e-mail address) in any attribute, event, status description or resource of any span."""
    hostile = FastAPI()

    @hostile.post("/api/v1/chat/completions")
    async def refuse(request: Request) -> JSONResponse:
        body = await request.json()
        text = body["messages"][-1]["content"]
        return JSONResponse({"error": {"message": f"Your prompt {text!r} was flagged", "code": 400,
                                       "type": "invalid_request_error"}}, status_code=400)

    with serve_asgi(hostile) as upstream_url, OTLPReceiver() as rx:
        app = FastAPI()

        @app.post("/ask")
        async def ask(request: Request) -> JSONResponse:
            text = (await request.json())["q"]
            async with httpx.AsyncClient() as client:
                answer = await client.post(f"{upstream_url}/api/v1/chat/completions", json={
                    "model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": text}]})
            if answer.status_code != 200:
                raise RuntimeError(f"the model refused {text}: {answer.text}")
            return JSONResponse(answer.json())

        settings = Settings(service_name="adv14", llm_hosts=f"openrouter={upstream_url}", destinations=[
            PhoenixDestination(endpoint=rx.traces_url, schedule_delay_ms=20, spool_dir=str(tmp_path), metrics=False)])
        app.add_middleware(LLMTracingMiddleware, settings=settings)
        with serve_asgi(app) as url:
            answer = httpx.post(f"{url}/ask", json={"q": f"{PROMPT_CANARY} mail {EMAIL_CANARY}"},
                                headers={"x-user-id": "alice"}, timeout=30)
            assert answer.status_code == 500
            assert or_middleware.force_flush()
        spans = rx.wait_for_spans(lambda s: s.scope == "or_middleware")
        rx.wait_for_spans(lambda s: s.kind == "SERVER")
        spans = list(rx.spans)
        or_middleware.shutdown_all()
    dumped = json.dumps([(s.name, s.attributes, s.events, s.status_message, s.resource, s.links) for s in spans],
                        default=str)
    assert PROMPT_CANARY not in dumped and EMAIL_CANARY not in dumped
    [llm] = [s for s in spans if s.scope == "or_middleware"]
    assert llm.status_code == "ERROR" and llm.attributes["output.value"].startswith("[not recorded")


ELASTIC_KEY = "CANARYelastic9b2c"
SENTRY_KEY = "CANARYsentry4d7a"
DYNATRACE_TOKEN = "dt0c01.CANARYdynatrace3e8f"


@pytest.fixture
def key_echoing_receiver():
    """Refuses every request quoting only the credential, without its scheme (``ApiKey``, ``Api-Token``,
    ``sentry sentry_key=``), as a vendor's "invalid key ..." message may."""
    hostile = FastAPI()

    @hostile.post("/{path:path}")
    async def refuse(request: Request) -> JSONResponse:
        value = request.headers.get("authorization") or request.headers.get("x-sentry-auth", "")
        token = value.split()[-1].split("=")[-1]
        return JSONResponse({"error": f"the key {token} is not valid"}, status_code=401)

    with serve_asgi(hostile) as url:
        yield url


def test_a_vendor_quoting_the_bare_key_never_gets_it_into_a_log_line_or_check(monkeypatch, capsys, caplog,
                                                                              key_echoing_receiver):
    from or_middleware.config import Settings
    from or_middleware.export.destinations import wire_target, wire_transport

    monkeypatch.setenv("OR_MIDDLEWARE_DESTINATIONS", "elastic,sentry,dynatrace")
    monkeypatch.setenv("OR_MIDDLEWARE_ELASTIC__ENDPOINT", key_echoing_receiver)
    monkeypatch.setenv("OR_MIDDLEWARE_ELASTIC__API_KEY", ELASTIC_KEY)
    host = key_echoing_receiver.removeprefix("http://")
    monkeypatch.setenv("OR_MIDDLEWARE_SENTRY__DSN", f"http://{SENTRY_KEY}@{host}/42")
    monkeypatch.setenv("OR_MIDDLEWARE_DYNATRACE__ENDPOINT", key_echoing_receiver)
    monkeypatch.setenv("OR_MIDDLEWARE_DYNATRACE__API_TOKEN", DYNATRACE_TOKEN)
    canaries = (ELASTIC_KEY, SENTRY_KEY, DYNATRACE_TOKEN)

    assert main(["check"]) == 1
    out = capsys.readouterr().out
    assert all(canary not in out for canary in canaries)
    # the destination's own name is no secret: "sentry" is the scheme of its auth header, not the key
    assert [line.split()[:2] for line in out.splitlines()] == [["FAIL", "elastic"], ["FAIL", "sentry"],
                                                              ["FAIL", "dynatrace"]]

    # what the middleware logs when a destination is down: the transport's reason
    settings = Settings()
    for dest in settings.destination_settings():
        target = wire_target(dest, settings)
        transport = wire_transport(target, dest, "application/x-protobuf")
        try:
            reason = transport.send(b"").reason
        finally:
            transport.close()
        assert "401" in reason and "is not valid" in reason
        assert all(canary not in reason for canary in canaries), reason
