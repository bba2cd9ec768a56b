"""Adversarial checks of our own server spans (issue 15 P1) through real servers and clients."""

from __future__ import annotations

import httpx
import openai
import pytest

import or_middleware
from or_middleware import LLMTracingWSGIMiddleware
from tests.conftest import make_settings, otlp
from tests.support.servers import serve_wsgi

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"


def _flask_app(upstream, settings):
    import flask

    app = flask.Flask(__name__)
    client = openai.OpenAI(base_url=upstream.openai, api_key="sk-test", max_retries=0)

    @app.post("/fail-while-streaming")
    def fail_while_streaming():
        def body():
            reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
            yield reply.choices[0].message.content.encode()
            raise RuntimeError("broken while streaming")

        return flask.Response(body())

    app.wsgi_app = LLMTracingWSGIMiddleware(app.wsgi_app, settings=settings)
    return app


@pytest.mark.parametrize("spans", ["traces", "all"])
def test_wsgi_exception_while_streaming_marks_the_server_span(upstream, receiver, spans):
    """An exception raised while the server iterates the body is the request's failure: the
    server span (the GenAI span's parent) gets status ERROR and an exception event, as the
    OpenTelemetry WSGI instrumentation's did."""
    app = _flask_app(upstream, make_settings(upstream, otlp(receiver, spans=spans)))
    with serve_wsgi(app) as url, httpx.Client(base_url=url, timeout=30) as client, pytest.raises(httpx.HTTPError):
        client.post("/fail-while-streaming", headers={"traceparent": TRACEPARENT}).read()
    assert or_middleware.force_flush()
    server = receiver.wait_for_spans(lambda s: s.kind == "SERVER", count=1)[0]
    genai = receiver.wait_for_spans(lambda s: s.scope == "or_middleware", count=1)[0]
    assert genai.parent_span_id == server.span_id and server.trace_id == CALLER_TRACE
    assert server.status_code == "ERROR"
    assert [e["name"] for e in server.events] == ["exception"]
    assert server.events[0]["attributes"]["exception.type"].endswith("RuntimeError")
