"""OpenRouter body linkage and traceparent propagation, through real calls to the fake upstream."""

from __future__ import annotations

import json

import httpx
from starlette.applications import Starlette

import or_middleware
from or_middleware import LLMTracingMiddleware
from or_middleware.capture.linkage import link_openrouter_body
from tests.apps import chat_body
from tests.conftest import make_settings, otlp


def genai_span(receiver):
    or_middleware.force_flush()
    return receiver.wait_for_spans(lambda s: s.scope == "or_middleware")[0]


def install(upstream, receiver, **options):
    LLMTracingMiddleware(Starlette(), settings=make_settings(upstream, otlp(receiver), **options))


def test_a_streamed_request_body_is_read_linked_and_sent_with_a_correct_length(upstream, receiver):
    install(upstream, receiver)
    raw = json.dumps(chat_body("streamed body")).encode()
    chunks = [raw[:10], raw[10:30], raw[30:]]
    response = httpx.post(f"{upstream.openrouter}/chat/completions", content=iter(chunks))
    assert response.status_code == 200
    sent = upstream.received[-1]
    span = genai_span(receiver)
    assert sent.json["messages"] == chat_body("streamed body")["messages"]
    assert sent.json["trace"]["parent_span_id"] == span.span_id
    assert span.attributes["or_middleware.linkage"] == "linked"


def test_a_body_above_the_cap_is_sent_untouched(upstream, receiver):
    install(upstream, receiver, max_link_body_bytes=1024)
    raw = json.dumps(chat_body("big " * 600)).encode()
    response = httpx.post(f"{upstream.openrouter}/chat/completions", content=iter([raw[:700], raw[700:]]))
    assert response.status_code == 200
    assert upstream.received[-1].body == raw
    span = genai_span(receiver)
    assert span.attributes["or_middleware.linkage"] == "skipped_large_body"
    # in-memory bodies above the cap too
    httpx.post(f"{upstream.openrouter}/chat/completions", content=raw)
    assert upstream.received[-1].body == raw


def test_non_json_bodies_pass_untouched(upstream, receiver):
    install(upstream, receiver)
    response = httpx.post(f"{upstream.openrouter}/chat/completions", content=b"{not json",
                          headers={"content-type": "application/json"})
    assert response.status_code >= 400
    assert upstream.received[-1].body == b"{not json"
    span = genai_span(receiver)
    assert span.attributes["or_middleware.linkage"] == "skipped_not_json"
    assert span.name == "chat"


def test_other_apis_never_get_body_fields(upstream, receiver):
    install(upstream, receiver)
    raw = json.dumps(chat_body("to openai")).encode()
    httpx.post(f"{upstream.openai}/chat/completions", content=raw, headers={"x-user-id": "u"})
    assert upstream.received[-1].body == raw
    assert "or_middleware.linkage" not in genai_span(receiver).attributes


def test_linkage_can_be_switched_off_and_traceparent_withheld(upstream, receiver):
    install(upstream, receiver, link_openrouter=False, propagate_traceparent="none")
    raw = json.dumps(chat_body("no linkage")).encode()
    httpx.post(f"{upstream.openrouter}/chat/completions", content=raw)
    assert upstream.received[-1].body == raw
    assert "traceparent" not in upstream.received[-1].headers


def test_traceparent_goes_to_gateways_not_to_vendor_apis():
    from or_middleware.capture.call import CallTarget, LLMCall
    from or_middleware.capture.detection import EndpointDetector
    from or_middleware.config import LLMHost, Settings
    from or_middleware.genai.registry import format_for
    from or_middleware.runtime import TracingRuntime

    def wants(url: str, mode: str) -> bool:
        settings = Settings(destinations=["console"], propagate_traceparent=mode,
                            llm_hosts=[LLMHost(provider="vllm", base_url="http://gpu:8000/v1")])
        runtime = TracingRuntime(settings)
        parts = httpx.URL(url)
        endpoint, path = EndpointDetector(settings.llm_hosts).match(parts.scheme, parts.host, parts.port, parts.path)
        call = LLMCall(CallTarget(runtime, endpoint, format_for(endpoint.api_kind, path)), parts.host, parts.port)
        runtime.shutdown()
        return call.wants_traceparent()

    assert wants("https://openrouter.ai/api/v1/chat/completions", "gateways")
    assert wants("http://gpu:8000/v1/chat/completions", "gateways")
    assert not wants("https://api.openai.com/v1/chat/completions", "gateways")
    assert not wants("https://api.anthropic.com/v1/messages", "gateways")
    assert wants("https://api.openai.com/v1/chat/completions", "all")
    assert not wants("https://openrouter.ai/api/v1/chat/completions", "none")


def test_link_body_keeps_app_keys_and_respects_a_foreign_trace():
    ours = {"trace_id": "a" * 32, "parent_span_id": "b" * 16, "generation_name": "chat m",
            "trace_name": "POST /x", "user": "u" * 300, "session": "s"}
    body = {"model": "m", "trace": {"trace_id": "c" * 32, "custom": 1}}
    assert link_openrouter_body(body, **ours) == "linked"
    assert body["trace"]["trace_id"] == "c" * 32
    assert "parent_span_id" not in body["trace"]  # our span id means nothing in another trace
    assert body["trace"]["custom"] == 1
    assert body["user"] == "u" * 128
    assert body["session_id"] == "s"
    everything = {"trace": {"trace_id": "a" * 32, "parent_span_id": "x", "trace_name": "t",
                            "generation_name": "g"}, "user": "me", "session_id": "mine"}
    assert link_openrouter_body(everything, **ours) == "kept"
    assert link_openrouter_body({"trace": "str"}, **ours) == "skipped_trace_not_object"
