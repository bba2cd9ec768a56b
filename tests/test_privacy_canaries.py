"""Privacy end to end: canary PII and a canary API key in prompts, system text, tool definitions,
tool arguments, tool results, outputs (plain and streamed) and an upstream error body.

A privacy-mode destination must never receive any of them, whatever its encoding or dialect;
a destination with privacy mode off receives the content but never the key; one with
REDACT_PII receives typed placeholders instead.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import or_middleware
from or_middleware import LLMTracingMiddleware, Settings
from or_middleware.config import (
    LangfuseDestination,
    LangSmithDestination,
    OtlpDestination,
    PhoenixDestination,
    PostHogDestination,
)
from or_middleware.demo.serving import serve_asgi
from tests.apps import AUTH, fastapi_app
from tests.support.capture_receiver import CaptureReceiver
from tests.support.otlp_receiver import OTLPReceiver

EMAIL = "canary.7f3a@example.com"
CARD = "4111 1111 1111 1111"  # a Luhn-valid test card
KEY = "sk-or-v1-" + "c4a7" * 16
CANARY_BYTES = (EMAIL.encode(), CARD.encode(), CARD.replace(" ", "").encode(), b"c4a7c4a7c4a7")

TOOLS = [{"type": "function", "function": {
    "name": "charge", "description": f"charges cards like {CARD}",
    "parameters": {"type": "object", "properties": {"card": {"type": "string"}}}}}]


def tool_round_trip(stream: bool) -> dict[str, Any]:
    arguments = json.dumps({"card": CARD, "email": EMAIL, "key": KEY})
    return {
        "model": "openai/gpt-4o-mini",
        "stream": stream,
        "tools": TOOLS,
        "messages": [
            {"role": "system", "content": f"Operator e-mail {EMAIL}"},
            {"role": "user", "content": f"Pay with {CARD}"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "charge", "arguments": arguments}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": f"charged {CARD} for {EMAIL} using {KEY}"},
            {"role": "user", "content": f"Confirm to {EMAIL} with key {KEY} and card {CARD}"},
        ],
    }


def plain_chat(stream: bool) -> dict[str, Any]:
    return {"model": "openai/gpt-4o-mini", "stream": stream,
            "messages": [{"role": "user", "content": f"Mail {EMAIL} the receipt for {CARD}, key {KEY}"}]}


async def rejecting_upstream(request: Request) -> JSONResponse:
    """An API that echoes the prompt's secrets in its error, as real APIs do."""
    return JSONResponse({"error": {"message": f"Invalid card {CARD} for {EMAIL} (api key {KEY})",
                                   "type": "invalid_request_error"}}, status_code=400)


def traced_app(upstream, rejecting_base: str, destinations: list[Any]) -> Any:
    app = fastapi_app(upstream.openrouter)

    @app.post("/ask-rejected")
    async def ask_rejected(request: Request) -> JSONResponse:
        async with httpx.AsyncClient(headers=AUTH) as client:
            answer = await client.post(f"{rejecting_base}/chat/completions", json=await request.json())
        return JSONResponse(answer.json(), status_code=answer.status_code)

    hosts = f"openrouter={upstream.openrouter},openai={rejecting_base}"
    settings = Settings(service_name="shop", destinations=destinations, llm_hosts=hosts)
    app.add_middleware(LLMTracingMiddleware, settings=settings)
    return app


@pytest.fixture
def rejecting_base():
    app = Starlette(routes=[Route("/v1/chat/completions", rejecting_upstream, methods=["POST"])])
    with serve_asgi(app) as url:
        yield f"{url}/v1"


def send_every_kind_of_content(url: str) -> None:
    identity = {"x-user-id": "alice", "x-session-id": "sess-canary"}
    with httpx.Client(base_url=url, timeout=30, headers=identity) as client:
        for body in (tool_round_trip(False), plain_chat(False)):
            client.post("/ask", json=body).raise_for_status()
        for body in (tool_round_trip(True), plain_chat(True)):
            with client.stream("POST", "/relay", json=body, headers={"x-fake-chunk-delay-ms": "0"}) as r:
                r.read()
        assert client.post("/ask-rejected", json=plain_chat(False)).status_code == 400
    assert or_middleware.force_flush()


def test_canaries_never_reach_a_privacy_mode_destination(upstream, rejecting_base, tmp_path):
    fast = {"schedule_delay_ms": 20, "spool_dir": str(tmp_path)}
    private = {name: OTLPReceiver().__enter__() for name in ("protobuf", "json", "langfuse", "phoenix", "langsmith")}
    open_rx, redacted_rx = OTLPReceiver().__enter__(), OTLPReceiver().__enter__()
    posthog = CaptureReceiver().__enter__()
    try:
        app = traced_app(upstream, rejecting_base, [
            OtlpDestination(name="otlp", endpoint=private["protobuf"].traces_url, **fast),
            OtlpDestination(name="otlp_json", endpoint=private["json"].traces_url, protocol="http/json", **fast),
            LangfuseDestination(public_key="pk", secret_key="sk", host=private["langfuse"].url, **fast),
            PhoenixDestination(endpoint=private["phoenix"].traces_url, **fast),
            LangSmithDestination(api_key="k", endpoint=private["langsmith"].url, **fast),
            PostHogDestination(api_key="phc_k", host=posthog.url, **fast),
            OtlpDestination(name="otlp_open", endpoint=open_rx.traces_url, privacy_mode=False, **fast),
            OtlpDestination(name="otlp_redacted", endpoint=redacted_rx.traces_url, privacy_mode=False,
                            redact_pii=True, **fast),
        ])
        with serve_asgi(app) as url:
            send_every_kind_of_content(url)
        genai = lambda s: s.scope == "or_middleware"  # noqa: E731
        for receiver in (*private.values(), open_rx, redacted_rx):
            receiver.wait_for_spans(genai, count=5)
        posthog.wait_for_requests()
    finally:
        for receiver in (*private.values(), open_rx, redacted_rx):
            receiver.close()
        posthog.__exit__(None, None, None)

    # privacy mode: none of it, in any encoding or dialect, nor the error body
    for name, receiver in private.items():
        sent = b"".join(r.body for r in receiver.requests)
        for canary in CANARY_BYTES:
            assert canary not in sent, (name, canary)
        errors = [s for s in receiver.spans if s.attributes.get("error.type")]
        assert errors and "or_middleware.error.message" not in errors[0].attributes, name
    posthog_sent = b"".join(r.body for r in posthog.requests)
    for canary in CANARY_BYTES:
        assert canary not in posthog_sent
    events = [e for r in posthog.requests for e in r.json["batch"]]
    assert len(events) == 5 and any(e["properties"]["$ai_is_error"] for e in events)

    # privacy mode off: the content arrives (prompts, tool arguments, outputs, the error)...
    open_sent = b"".join(r.body for r in open_rx.requests)
    assert EMAIL.encode() in open_sent and CARD.encode() in open_sent
    spans = open_rx.spans
    inputs = " ".join(str(s.attributes.get("gen_ai.input.messages", "")) for s in spans)
    outputs = " ".join(str(s.attributes.get("gen_ai.output.messages", "")) for s in spans)
    assert EMAIL in inputs and CARD in inputs and '"tool_call"' in inputs and "tool_call_response" in inputs
    assert EMAIL in outputs and '"tool_call"' in outputs
    error = next(s for s in spans if s.attributes.get("error.type"))
    assert EMAIL in error.attributes["or_middleware.error.message"]
    # ...but never the key: secrets are scrubbed for every destination
    assert b"c4a7c4a7c4a7" not in open_sent
    assert "[SECRET]" in inputs and "[SECRET]" in error.attributes["or_middleware.error.message"]

    # REDACT_PII: typed placeholders where the canaries were
    redacted_sent = b"".join(r.body for r in redacted_rx.requests)
    for canary in CANARY_BYTES:
        assert canary not in redacted_sent, canary
    for placeholder in (b"[EMAIL]", b"[CARD]", b"[SECRET]"):
        assert placeholder in redacted_sent
    redacted_error = next(s for s in redacted_rx.spans if s.attributes.get("error.type"))
    assert redacted_error.attributes["or_middleware.error.message"] == \
        "Invalid card [CARD] for [EMAIL] (api key [SECRET])"


def test_request_headers_and_api_keys_are_never_recorded(upstream, rejecting_base, receiver, tmp_path):
    app = traced_app(upstream, rejecting_base, [
        OtlpDestination(endpoint=receiver.traces_url, privacy_mode=False, schedule_delay_ms=20,
                        spool_dir=str(tmp_path))])
    with serve_asgi(app) as url:
        httpx.post(f"{url}/ask", json=plain_chat(False),
                   headers={"authorization": "Bearer sk-or-v1-" + "ab12" * 16}).raise_for_status()
        or_middleware.force_flush()
    receiver.wait_for_spans(lambda s: s.scope == "or_middleware")
    sent = b"".join(r.body for r in receiver.requests)
    assert b"ab12ab12" not in sent  # the inbound Authorization header
    assert b"CANARYKEY" not in sent  # the app's outbound key to the LLM API
    assert b"c4a7c4a7" not in sent  # the key in the prompt
