"""examples/proxy_app.py: a gateway that forwards /v1/chat/completions to OpenRouter, driven by the openai SDK."""

from __future__ import annotations

import time

import openai

import or_middleware
from examples.proxy_app import create_app
from or_middleware.demo.serving import serve_asgi
from tests.conftest import make_settings, otlp

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"


def test_forwarded_stream_is_traced_linked_and_relayed_chunk_by_chunk(upstream, receiver):
    settings = make_settings(upstream, otlp(receiver))
    app = create_app(upstream.openrouter, api_key="sk-or-v1-SERVERKEY", settings=settings)
    with serve_asgi(app) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="client-key-CANARY")
        arrivals: list[float] = []
        text = []
        stream = client.chat.completions.create(
            model="fake/slow",  # the fake upstream waits 100 ms between events
            messages=[{"role": "user", "content": "relay me please now"}],
            stream=True,
            user="carol",
            extra_headers={"traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01"},
            extra_body={"session_id": "s-9", "trace": {"trace_name": "gateway", "customer": "acme"}},
        )
        for chunk in stream:
            arrivals.append(time.perf_counter())
            if chunk.choices and chunk.choices[0].delta.content:
                text.append(chunk.choices[0].delta.content)
        or_middleware.force_flush()
    assert "".join(text) == "Echo: relay me please now"
    # chunk by chunk: the first event reached the client long before the last one
    assert arrivals[-1] - arrivals[0] > 0.25
    sent = upstream.received[-1]
    assert sent.json["user"] == "carol" and sent.json["session_id"] == "s-9"
    assert sent.json["trace"]["trace_name"] == "gateway" and sent.json["trace"]["customer"] == "acme"
    assert sent.json["trace"]["trace_id"] == TRACE_ID
    assert sent.headers["authorization"] == "Bearer sk-or-v1-SERVERKEY"
    server = receiver.wait_for_spans(lambda s: s.kind == "SERVER")[0]
    # The gateway's forwarded call, the child of its server span. (The test's own openai client
    # runs in this process too, and its call to the gateway is a chat call by request shape:
    # it is traced as well, as it would be in a client app with the middleware.)
    genai = receiver.wait_for_spans(lambda s: s.scope == "or_middleware" and s.parent_span_id == server.span_id)[0]
    assert server.trace_id == TRACE_ID and server.parent_span_id == CALLER_SPAN
    assert genai.parent_span_id == server.span_id
    assert sent.json["trace"]["parent_span_id"] == genai.span_id
    assert genai.attributes["user.id"] == "carol"
    assert genai.attributes["trace.metadata.customer"] == "acme"
    assert all(b"CANARY" not in r.body and b"SERVERKEY" not in r.body for r in receiver.requests)
