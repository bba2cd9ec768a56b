"""OpenRouter body linkage and traceparent propagation, through real calls to the fake upstream."""

from __future__ import annotations

import json

import httpx
import pytest
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


# -- issue 11 item 17: the app's bytes are never re-serialised ----------------------------------

IDS = {"trace_id": "a" * 32, "parent_span_id": "b" * 16, "generation_name": "chat m", "trace_name": None,
       "user": "u1", "session": None}


def _send(client: str, url: str, raw: bytes) -> None:
    headers = {"content-type": "application/json", "x-user-id": "u1"}
    if client == "httpx":
        httpx.post(url, content=raw, headers=headers)
    elif client == "httpx-async":
        import asyncio

        async def post() -> None:
            async with httpx.AsyncClient() as http:
                await http.post(url, content=raw, headers=headers)

        asyncio.run(post())
    else:
        import requests

        requests.post(url, data=raw, headers=headers, timeout=30)


def _traced_send(upstream, receiver, client: str, raw: bytes) -> tuple[bytes, str]:
    install(upstream, receiver)
    from or_middleware import context
    from or_middleware.runtime import default_runtime

    token = context.enter(context.RequestIdentity(default_runtime(), "u1", None, None))
    try:
        _send(client, f"{upstream.openrouter}/chat/completions", raw)
    finally:
        context.leave(token)
    return upstream.received[-1].body, genai_span(receiver).attributes["or_middleware.linkage"]


CLIENTS = ["httpx", "httpx-async", "requests"]
# what json.loads + json.dumps would have changed: duplicate keys, 1e2, a long float, spacing, key order
AWKWARD = (b'{ "model" : "m", "n": 1e2, "t": 0.1000000000000000055511151231257827,\n'
           b' "messages": [{"role": "user", "content": "hi", "content": "dup"}], "z": 1E400 }')


@pytest.mark.parametrize("client", CLIENTS)
def test_linkage_is_spliced_into_the_apps_own_bytes(upstream, receiver, client):
    sent, linkage = _traced_send(upstream, receiver, client, AWKWARD)
    assert linkage == "linked"
    assert sent.startswith(b"{") and sent.endswith(AWKWARD[1:])  # everything of the app's, byte for byte
    added = json.loads(sent[: len(sent) - len(AWKWARD)] + b"}")  # the members we inserted (comma dropped)
    assert set(added) == {"trace", "user"} and added["user"] == "u1"
    assert set(added["trace"]) == {"trace_id", "parent_span_id", "generation_name"}


@pytest.mark.parametrize("client", CLIENTS)
def test_linkage_merges_into_the_apps_trace_object_textually(upstream, receiver, client):
    raw = b'{"model":"m","trace": {"trace_name": "mine", "x": 1.50}, "messages":[{"role":"user","content":"\xc3\xa9"}]}'
    sent, linkage = _traced_send(upstream, receiver, client, raw)
    assert linkage == "linked"
    head, _, tail = raw.partition(b'"trace": {')
    assert sent.startswith(b'{"user":"u1",' + head[1:] + b'"trace": {"trace_id":"')
    assert sent.endswith(b'"generation_name":"chat m",' + tail)
    assert json.loads(sent)["trace"]["trace_name"] == "mine"


@pytest.mark.parametrize(("raw", "reason"), [
    (b'{"model":"m","trace":null,"messages":[]}', "skipped_trace_not_object"),  # null is the app's choice
    ('{"model":"m","messages":[]}'.encode("utf-16"), "skipped_not_utf8"),
    (b'{"model":"m","trace":{"a":1},"trace":{"b":2},"messages":[]}', "skipped_duplicate_keys"),
    (b'{"model":"m","trace":"x","trace":{"b":2},"messages":[]}', "skipped_duplicate_keys"),
    (json.dumps({"model": "m", "messages": [], **{f"k{i}": i for i in range(300)}}).encode(), "skipped_too_many_keys"),
])
@pytest.mark.parametrize("client", CLIENTS)
def test_a_body_that_cannot_be_spliced_is_sent_untouched_with_the_reason(upstream, receiver, client, raw, reason):
    sent, linkage = _traced_send(upstream, receiver, client, raw)
    assert sent == raw
    assert linkage == reason


def test_parse_body_reads_exactly_what_json_loads_reads():
    from or_middleware.capture.linkage import parse_body

    for raw in [AWKWARD, b" [1, 2] ", b'\xef\xbb\xbf{"a": {"trace": 1}, "trace": {}}', b"{}", b'"s"']:
        assert json.dumps(parse_body(raw)[0]) == json.dumps(json.loads(raw))
    for bad in [b'{"a":1,}', b'{"a" 1}', b'{"a":1} x', b"{1:2}", b'{"a":1', b"", b"\xff{}"]:
        with pytest.raises(ValueError):
            json.loads(bad)
        with pytest.raises(ValueError):
            parse_body(bad)
