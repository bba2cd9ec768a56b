"""`requests` calls (the seed article posts to OpenRouter with requests.post) are detected, linked and traced."""

from __future__ import annotations

import json

import requests
from flask import Flask
from flask import request as flask_request

import or_middleware
from or_middleware import LLMTracingWSGIMiddleware
from tests.apps import AUTH, chat_body
from tests.conftest import make_settings, otlp
from tests.support.servers import serve_wsgi


def flask_requests_app(llm_base: str) -> Flask:
    app = Flask(__name__)

    @app.post("/ask")
    def ask():  # the seed article's style: requests.post with json=
        upstream = requests.post(f"{llm_base}/chat/completions", headers=AUTH, json=flask_request.get_json(),
                                 timeout=30)
        return upstream.content, upstream.status_code, {"content-type": "application/json"}

    @app.post("/stream")
    def stream():
        upstream = requests.post(f"{llm_base}/chat/completions", headers=AUTH, json=flask_request.get_json(),
                                 stream=True, timeout=30)
        return b"".join(upstream.iter_lines(delimiter=b"\n\n")), 200

    return app


def test_requests_calls_are_traced_and_linked(upstream, receiver):
    app = flask_requests_app(upstream.openrouter)
    app.wsgi_app = LLMTracingWSGIMiddleware(app.wsgi_app, settings=make_settings(upstream, otlp(receiver)))
    headers = {"x-user-id": "dora", "x-session-id": "s-1"}
    with serve_wsgi(app) as url:
        answer = requests.post(f"{url}/ask", json=chat_body("via requests"), headers=headers, timeout=30)
        assert answer.status_code == 200
        streamed = requests.post(f"{url}/stream", json=chat_body("via requests stream", stream=True),
                                 headers=headers, timeout=30)
        assert streamed.status_code == 200
        or_middleware.force_flush()
    genai = receiver.wait_for_spans(lambda s: s.scope == "or_middleware", count=2)
    servers = {s.span_id for s in receiver.wait_for_spans(lambda s: s.kind == "SERVER", count=2)}
    plain = next(s for s in genai if not s.attributes["gen_ai.request.stream"])
    stream = next(s for s in genai if s.attributes["gen_ai.request.stream"])
    assert plain.parent_span_id in servers and stream.parent_span_id in servers
    assert plain.attributes["gen_ai.response.id"] == answer.json()["id"]
    assert plain.attributes["gen_ai.usage.cost"] == answer.json()["usage"]["cost"]
    assert plain.attributes["user.id"] == "dora"
    assert stream.attributes["or_middleware.stream.outcome"] == "completed"
    assert stream.attributes["gen_ai.usage.output_tokens"] > 0
    first = upstream.received[0]
    assert first.json["trace"]["parent_span_id"] == plain.span_id
    assert first.json["session_id"] == "s-1"
    assert int(first.headers["content-length"]) == len(first.body)
    assert json.loads(first.body)["messages"] == chat_body("via requests")["messages"]


def test_gzip_responses_through_requests_are_parsed(upstream, receiver):
    from starlette.applications import Starlette

    from or_middleware import LLMTracingMiddleware

    LLMTracingMiddleware(Starlette(), settings=make_settings(upstream, otlp(receiver)))
    answer = requests.post(f"{upstream.openrouter}/chat/completions", json=chat_body("zip it"),
                           headers={"x-fake-scenario": "gzip"}, timeout=30)
    assert answer.json()["choices"][0]["message"]["content"] == "Echo: zip it"
    or_middleware.force_flush()
    span = receiver.wait_for_spans(lambda s: s.scope == "or_middleware")[0]
    assert span.attributes["gen_ai.usage.output_tokens"] == answer.json()["usage"]["completion_tokens"]
    assert span.status_code == "UNSET"
