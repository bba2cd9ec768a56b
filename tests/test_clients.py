"""Clients beyond the default httpx transports: custom transports, transports used without a
client, HTTP/2, the openai SDK's raw/streaming/helper surfaces and the SDKs' aiohttp backends.
Each call must produce exactly one GenAI span that agrees with what the client saw."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

import httpx
import httpx2
import openai
import pytest
from starlette.applications import Starlette

import or_middleware
from or_middleware import LLMTracingMiddleware, Settings
from or_middleware.demo.fake_upstream import create_fake_upstream
from tests.apps import AUTH, chat_body
from tests.conftest import make_settings, otlp
from tests.support.real_servers import serve_hypercorn

MODULES = [httpx, httpx2]


@pytest.fixture
def genai_spans(upstream, receiver) -> Callable[[int], list[Any]]:
    """Installs the hook (a middleware is built); returns a waiter for exactly ``count`` GenAI spans."""
    LLMTracingMiddleware(Starlette(), settings=make_settings(upstream, otlp(receiver)))

    def wait(count: int = 1) -> list[Any]:
        or_middleware.force_flush()
        spans = receiver.wait_for_spans(lambda s: s.scope == "or_middleware", count=count)
        or_middleware.force_flush()  # anything late (a double span) would arrive now
        assert len([s for s in receiver.spans if s.scope == "or_middleware"]) == count
        return spans

    return wait


def canned_completion(request: Any) -> dict[str, Any]:
    body = json.loads(request.content)
    return {
        "id": "gen-mock-1", "object": "chat.completion", "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "mocked"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9, "cost": 0.00042},
    }


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_a_custom_transport_that_never_touches_the_default_one_is_traced_and_linked(upstream, genai_spans, module):
    seen: list[Any] = []

    def handler(request: Any) -> Any:
        seen.append(json.loads(request.content))
        return module.Response(200, json=canned_completion(request))

    with module.Client(transport=module.MockTransport(handler), headers=AUTH) as client:
        answer = client.post(f"{upstream.openrouter}/chat/completions", json=chat_body("mock me"))
    assert answer.json()["choices"][0]["message"]["content"] == "mocked"
    [span] = genai_spans(1)
    assert span.attributes["gen_ai.response.id"] == "gen-mock-1"
    assert span.attributes["gen_ai.usage.output_tokens"] == 2
    assert span.attributes["gen_ai.usage.cost"] == pytest.approx(0.00042)
    assert seen[0]["trace"]["parent_span_id"] == span.span_id  # linkage happened above the transport
    assert seen[0]["trace"]["trace_id"] == span.trace_id


class RetryingTransport(httpx.BaseTransport):
    """A user's transport that wraps the default one (retries, metrics, auth refresh ...)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.calls = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def test_a_transport_wrapping_the_default_one_gives_one_span_not_two(upstream, genai_spans):
    transport = RetryingTransport()
    with httpx.Client(transport=transport, headers=AUTH) as client:
        answer = client.post(f"{upstream.openrouter}/chat/completions", json=chat_body("wrapped"))
    assert transport.calls == 1
    [span] = genai_spans(1)
    assert span.attributes["gen_ai.response.id"] == answer.json()["id"]
    assert upstream.received[-1].json["trace"]["parent_span_id"] == span.span_id


def test_a_default_transport_used_without_a_client_is_still_traced(upstream, genai_spans):
    request = httpx.Request("POST", f"{upstream.openrouter}/chat/completions", json=chat_body("bare"), headers=AUTH)
    with httpx.HTTPTransport() as transport:
        response = transport.handle_request(request)
        content = b"".join(response.stream)
        response.close()
    [span] = genai_spans(1)
    assert span.attributes["gen_ai.response.id"] == json.loads(content)["id"]


def test_async_asgi_transport_in_process_streaming(upstream, genai_spans):
    """An in-process ASGI transport (a common test and gateway setup), streamed."""

    async def run() -> bytes:
        transport = httpx.ASGITransport(app=create_fake_upstream())
        async with httpx.AsyncClient(transport=transport, headers=AUTH) as client, client.stream(
            "POST", f"{upstream.openrouter}/chat/completions", json=chat_body("one two three", stream=True)
        ) as response:
            return b"".join([chunk async for chunk in response.aiter_raw()])

    relayed = asyncio.run(run())
    assert relayed.rstrip().endswith(b"data: [DONE]")
    [span] = genai_spans(1)
    assert span.attributes["gen_ai.request.stream"] is True
    assert span.attributes["or_middleware.stream.outcome"] == "completed"
    assert span.attributes["gen_ai.usage.output_tokens"] > 0


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_http2_with_prior_knowledge(upstream, receiver, module: ModuleType):
    """HTTP/2 (h2c) against hypercorn: same span, same linkage, sync and streamed."""
    pytest.importorskip("h2")
    with serve_hypercorn(create_fake_upstream()) as url:
        base = f"{url}/api/v1"
        settings = Settings(destinations=[otlp(receiver)], llm_hosts=f"openrouter={base}")
        LLMTracingMiddleware(Starlette(), settings=settings)
        with module.Client(http1=False, http2=True, headers=AUTH) as client:
            answer = client.post(f"{base}/chat/completions", json=chat_body("over h2"))
            with client.stream("POST", f"{base}/chat/completions", json=chat_body("h2 stream", stream=True)) as r:
                streamed = b"".join(r.iter_raw())
                version = r.http_version
        or_middleware.force_flush()
    assert answer.http_version == version == "HTTP/2"
    assert streamed.rstrip().endswith(b"data: [DONE]")
    spans = receiver.wait_for_spans(lambda s: s.scope == "or_middleware", count=2)
    plain = next(s for s in spans if not s.attributes["gen_ai.request.stream"])
    stream = next(s for s in spans if s.attributes["gen_ai.request.stream"])
    assert plain.attributes["gen_ai.response.id"] == answer.json()["id"]
    assert stream.attributes["or_middleware.stream.outcome"] == "completed"
    assert stream.attributes["gen_ai.usage.output_tokens"] > 0


def test_openai_with_raw_response_and_with_streaming_response(upstream, genai_spans):
    client = openai.OpenAI(base_url=upstream.openrouter, api_key="k")
    raw = client.chat.completions.with_raw_response.create(**chat_body("raw please"))
    completion = raw.parse()
    assert raw.http_request.headers["traceparent"]
    with client.chat.completions.with_streaming_response.create(**chat_body("lines please", stream=True)) as lines:
        text = "".join(lines.iter_lines())
    assert "[DONE]" in text
    spans = genai_spans(2)
    plain = next(s for s in spans if not s.attributes["gen_ai.request.stream"])
    streamed = next(s for s in spans if s.attributes["gen_ai.request.stream"])
    assert plain.attributes["gen_ai.response.id"] == completion.id
    assert plain.attributes["gen_ai.usage.output_tokens"] == completion.usage.completion_tokens
    assert streamed.attributes["or_middleware.stream.outcome"] == "completed"


def test_openai_stream_helpers_sync_and_async(upstream, genai_spans):
    kwargs = chat_body("helper stream", stream_options={"include_usage": True})
    with openai.OpenAI(base_url=upstream.openrouter, api_key="k").chat.completions.stream(**kwargs) as stream:
        final = stream.get_final_completion()

    async def run() -> Any:
        client = openai.AsyncOpenAI(base_url=upstream.openrouter, api_key="k")
        async with client.chat.completions.stream(**kwargs) as astream:
            return await astream.get_final_completion()

    afinal = asyncio.run(run())
    spans = genai_spans(2)
    assert {s.attributes["gen_ai.response.id"] for s in spans} == {final.id, afinal.id}
    for span in spans:
        assert span.attributes["gen_ai.request.stream"] is True
        assert span.attributes["gen_ai.usage.output_tokens"] == final.usage.completion_tokens


def test_openai_with_a_custom_http_client_and_transport(upstream, genai_spans):
    class CountingTransport(httpx2.BaseTransport):
        def __init__(self) -> None:
            self.inner = httpx2.HTTPTransport()
            self.calls = 0

        def handle_request(self, request: httpx2.Request) -> httpx2.Response:
            self.calls += 1
            return self.inner.handle_request(request)

    transport = CountingTransport()
    client = openai.OpenAI(base_url=upstream.openrouter, api_key="k",
                           http_client=openai.DefaultHttpxClient(transport=transport))
    completion = client.chat.completions.create(**chat_body("custom client"))
    assert transport.calls == 1
    [span] = genai_spans(1)
    assert span.attributes["gen_ai.response.id"] == completion.id


@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
def test_the_sdks_aiohttp_backend_is_traced(upstream, genai_spans, sdk):
    """``DefaultAioHttpClient`` sends through aiohttp via an httpx transport: the client seam sees it."""
    pytest.importorskip("aiohttp")

    async def run() -> str:
        if sdk == "openai":
            async with openai.AsyncOpenAI(base_url=upstream.openrouter, api_key="k",
                                          http_client=openai.DefaultAioHttpClient()) as client:
                return (await client.chat.completions.create(**chat_body("aio"))).id
        import anthropic

        async with anthropic.AsyncAnthropic(base_url=upstream.anthropic, api_key="k",
                                            http_client=anthropic.DefaultAioHttpClient()) as client:
            message = await client.messages.create(model="claude-opus-4-7", max_tokens=20,
                                                   messages=[{"role": "user", "content": "aio"}])
            return message.id

    ident = asyncio.run(run())
    [span] = genai_spans(1)
    assert span.attributes["gen_ai.response.id"] == ident
    assert span.attributes["gen_ai.provider.name"] == ("anthropic" if sdk == "anthropic" else "openrouter")


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_uninstrument_restores_the_client_seam_too(upstream, genai_spans, module):
    patched = module.Client._send_single_request, module.AsyncClient._send_single_request
    assert all(getattr(f, "__or_middleware_original__", None) for f in patched)
    or_middleware.uninstrument()
    try:
        restored = module.Client._send_single_request, module.AsyncClient._send_single_request
        assert restored == tuple(f.__or_middleware_original__ for f in patched)
        with module.Client(transport=module.MockTransport(lambda r: module.Response(200, json={"id": "x"}))) as c:
            c.post(f"{upstream.openrouter}/chat/completions", json=chat_body("untraced"))
    finally:
        or_middleware.instrument()
    assert module.Client._send_single_request is not restored[0]
    with module.Client(transport=module.MockTransport(lambda r: module.Response(200, json={"id": "traced"}))) as c:
        c.post(f"{upstream.openrouter}/chat/completions", json=chat_body("traced again"))
    [span] = genai_spans(1)  # only the call made while instrumented
    assert span.attributes["gen_ai.response.id"] == "traced"
