"""Detection by request shape on any host, the built-in host table and OR_MIDDLEWARE_DETECT.

End to end: a FastAPI app under uvicorn calls a fake LLM API on a loopback host that no
setting names; the call is traced with no configuration, while POSTs on the same path whose
bodies are not chat requests are not, and the app's answers are the same either way.
"""

from __future__ import annotations

import logging
import re

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response

import or_middleware
from or_middleware import LLMTracingMiddleware, Settings
from or_middleware.capture.detection import EndpointDetector, confirms_shape
from or_middleware.config import LLMHost
from or_middleware.demo.serving import serve_asgi
from or_middleware.genai.registry import format_for
from tests.apps import chat_body
from tests.conftest import otlp


def relay_app(target: str) -> FastAPI:
    """POSTs the request body as it came to ``target`` and answers with the upstream's bytes."""
    app = FastAPI()

    @app.post("/relay")
    async def relay(request: Request) -> Response:
        async with httpx.AsyncClient() as client:
            upstream = await client.post(target, content=await request.body(),
                                         headers={"content-type": "application/json"})
        return Response(upstream.content, status_code=upstream.status_code, media_type="application/json")

    return app


def scrub(content: bytes) -> bytes:
    return re.sub(rb'"(id|created)": ("[^"]*"|\d+)', b"", content)


def genai_spans(receiver) -> list:
    or_middleware.force_flush()
    return [s for s in receiver.spans if s.scope == "or_middleware"]


def test_unlisted_host_is_traced_by_shape_and_other_bodies_are_not(upstream, receiver):
    target = f"{upstream.url}/v1/chat/completions"  # 127.0.0.1:<port>, named by no setting
    app = relay_app(target)
    app.add_middleware(LLMTracingMiddleware, settings=Settings(destinations=[otlp(receiver)]))
    bare = relay_app(target)
    not_chat = [
        b'{"query": "select 1", "messages": "not a list"}',
        b'{"model": "m", "messages": {"role": "user"}}',
        b'{"messages": [{"role": "user", "content": "no model"}]}',
        b'[{"model": "m", "messages": []}]',
        b"not json at all",
    ]
    with serve_asgi(app) as url, serve_asgi(bare) as bare_url:
        answer = httpx.post(f"{url}/relay", json=chat_body("shape me"))
        assert answer.status_code == 200
        [server] = receiver.wait_for_spans(lambda s: s.kind == "SERVER")
        [span] = receiver.wait_for_spans(lambda s: s.scope == "or_middleware")
        assert span.parent_span_id == server.span_id
        assert span.attributes["gen_ai.provider.name"] == "127.0.0.1"  # an unknown host: its address
        assert span.attributes["server.address"] == "127.0.0.1"
        assert span.attributes["gen_ai.request.model"] == "openai/gpt-4o-mini"
        assert span.attributes["gen_ai.response.id"] == answer.json()["id"]
        assert span.attributes["gen_ai.usage.output_tokens"] == answer.json()["usage"]["completion_tokens"]
        assert "traceparent" not in upstream.received[-1].headers  # not a gateway of the user's
        assert upstream.received[-1].body == httpx.Request("POST", "/", json=chat_body("shape me")).content
        for body in not_chat:
            traced = httpx.post(f"{url}/relay", content=body)
            untraced = httpx.post(f"{bare_url}/relay", content=body)
            assert traced.status_code == untraced.status_code
            assert scrub(traced.content) == scrub(untraced.content)  # the fake numbers its answers
            assert upstream.received[-1].body == body
    assert len(genai_spans(receiver)) == 1


def test_detect_listed_traces_only_listed_hosts(upstream, receiver):
    app = relay_app(f"{upstream.url}/v1/chat/completions")
    app.add_middleware(LLMTracingMiddleware, settings=Settings(destinations=[otlp(receiver)], detect="listed"))
    with serve_asgi(app) as url:
        assert httpx.post(f"{url}/relay", json=chat_body("listed only")).status_code == 200
        receiver.wait_for_spans(lambda s: s.kind == "SERVER")
    assert genai_spans(receiver) == []


def test_detect_listed_still_traces_llm_hosts_entries(upstream, receiver):
    settings = Settings(destinations=[otlp(receiver)], detect="listed", llm_hosts=f"vllm={upstream.url}/v1")
    app = relay_app(f"{upstream.url}/v1/chat/completions")
    app.add_middleware(LLMTracingMiddleware, settings=settings)
    with serve_asgi(app) as url:
        assert httpx.post(f"{url}/relay", json=chat_body("listed")).status_code == 200
        [span] = receiver.wait_for_spans(lambda s: s.scope == "or_middleware")
    assert span.attributes["gen_ai.provider.name"] == "vllm"


def test_detect_setting_is_validated(monkeypatch):
    monkeypatch.setenv("OR_MIDDLEWARE_DETECT", "sometimes")
    with pytest.raises(ValueError, match=r"OR_MIDDLEWARE_DETECT=.sometimes.: Input should be .auto. or .listed."):
        Settings()
    monkeypatch.setenv("OR_MIDDLEWARE_DETECT", "listed")
    assert Settings().detect == "listed"


@pytest.mark.parametrize(
    ("url", "provider"),
    [
        ("https://api.openai.com/v1/chat/completions", "openai"),
        ("https://openrouter.ai/api/v1/chat/completions", "openrouter"),
        ("https://api.anthropic.com/v1/messages", "anthropic"),
        ("https://api.groq.com/openai/v1/chat/completions", "groq"),
        ("https://api.mistral.ai/v1/chat/completions", "mistral_ai"),
        ("https://api.deepseek.com/chat/completions", "deepseek"),
        ("https://api.x.ai/v1/chat/completions", "x_ai"),
        ("https://api.perplexity.ai/chat/completions", "perplexity"),
        ("https://api.together.xyz/v1/chat/completions", "together"),
        ("https://api.fireworks.ai/inference/v1/chat/completions", "fireworks"),
        ("https://my-resource.openai.azure.com/openai/deployments/gpt4o/chat/completions", "azure.ai.openai"),
        ("https://bedrock-runtime.us-east-1.amazonaws.com/openai/v1/chat/completions", "aws.bedrock"),
        ("http://localhost:11434/v1/chat/completions", "ollama"),
    ],
)
def test_host_table_names_providers_with_semconv_values(url, provider):
    parts = httpx.URL(url)
    for mode in ("auto", "listed"):
        endpoint, path = EndpointDetector((), mode).match(parts.scheme, parts.host, parts.port, parts.path)
        assert endpoint.provider == provider
        assert not endpoint.by_shape  # a listed host: traced on its API paths without a body check
        assert format_for(endpoint.api_kind, path) is not None


def test_unlisted_hosts_need_the_body_shape_and_are_bounded():
    detector = EndpointDetector((), "auto")
    endpoint, path = detector.match("http", "gpu-box", 8000, "/v1/chat/completions")
    assert endpoint.by_shape and endpoint.provider == "gpu-box" and path == "/v1/chat/completions"
    assert detector.match("https", "s3.amazonaws.com", None, "/v1/chat/completions")[0].by_shape
    assert EndpointDetector((), "listed").match("http", "gpu-box", 8000, "/v1/chat/completions") is None
    for n in range(3000):  # hostile or merely busy traffic must not grow per-host state without bound
        detector.match("http", f"h{n}", 80, "/v1/chat/completions")
    assert len(detector._named) <= 1024


def test_llm_hosts_entry_overrides_the_builtin_name():
    detector = EndpointDetector([LLMHost(provider="openrouter", base_url="https://api.openai.com/v1")])
    endpoint, _ = detector.match("https", "api.openai.com", None, "/v1/chat/completions")
    assert endpoint.provider == "openrouter" and endpoint.openrouter and endpoint.gateway


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        ("/v1/chat/completions", {"model": "m", "messages": []}, True),
        ("/v1/chat/completions", {"model": " ", "messages": []}, False),
        ("/v1/chat/completions", {"model": 3, "messages": []}, False),
        ("/v1/chat/completions", {"model": "m", "prompt": "x"}, False),
        ("/v1/completions", {"model": "m", "prompt": ["a", "b"]}, True),
        ("/v1/completions", {"model": "m", "messages": []}, False),
        ("/v1/embeddings", {"model": "m", "input": "x"}, True),
        ("/v1/embeddings", {"model": "m", "text": "x"}, False),
        ("/v1/responses", {"model": "m", "input": "x"}, True),
        ("/v1/messages", {"model": "m", "messages": [], "max_tokens": 5}, True),
        ("/v1/messages", {"to": "bob", "messages": ["hi"]}, False),
    ],
)
def test_request_shapes(path, body, expected):
    assert confirms_shape(format_for("openai", path), body) is expected


def test_debug_logs_each_llm_looking_post_and_why(upstream, receiver, caplog):
    settings = Settings(destinations=[otlp(receiver)], debug=True)
    app = relay_app(f"{upstream.url}/v1/chat/completions?key=CANARY-QUERY-KEY")
    app.add_middleware(LLMTracingMiddleware, settings=settings)
    with caplog.at_level(logging.INFO, logger="or_middleware.debug"), serve_asgi(app) as url:
        httpx.post(f"{url}/relay", json=chat_body("CANARY-PROMPT"))
        httpx.post(f"{url}/relay", content=b'{"query": "CANARY-BODY"}')
    lines = [r.getMessage() for r in caplog.records if r.name == "or_middleware.debug"]
    assert any("/v1/chat/completions traced as 127.0.0.1 chat (request shape" in line for line in lines), lines
    assert any("not traced: unlisted host and the body has not this API's shape" in line for line in lines), lines
    assert not any("CANARY" in line for line in lines)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/chat/completions", True),
        ("/chat/completions", True),
        ("/openai/deployments/gpt4o/chat/completions", True),
        ("/v1/messages", True),
        ("/api/v1/responses", True),
        ("/v1beta/embeddings", True),
        ("/v1beta/models/gemini-2.5-flash:generateContent", True),
        ("/api/chat", True),
        ("/v2/chat", True),
        ("/messages", False),
        ("/api/messages", False),
        ("/inbox/responses", False),
        ("/search/embeddings", False),
        ("/completions", False),
    ],
)
def test_generic_path_ends_need_a_version_segment_on_unlisted_hosts(path, expected):
    from or_middleware.capture.detection import versioned_api_path

    assert versioned_api_path(path) is expected
