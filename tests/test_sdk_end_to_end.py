"""The real openai, anthropic and openrouter SDKs, sync and async, streaming and not, against the
fake upstream on loopback: each call produces one GenAI span that agrees with what the SDK saw."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import openai
import pytest
from starlette.applications import Starlette

import or_middleware
from or_middleware import LLMTracingMiddleware
from tests.conftest import make_settings, otlp

pytestmark = pytest.mark.filterwarnings("ignore:The model:DeprecationWarning")

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "count the stars tonight"}]


@pytest.fixture
def genai_span(upstream, receiver):
    LLMTracingMiddleware(Starlette(), settings=make_settings(upstream, otlp(receiver)))

    def wait() -> Any:
        or_middleware.force_flush()
        spans = receiver.wait_for_spans(lambda s: s.scope == "or_middleware")
        assert len(spans) == 1
        return spans[0]

    return wait


def _openai_stream(stream: Any) -> tuple[str, Any, str | None, str | None]:
    text, usage, ident, finish = [], None, None, None
    for chunk in stream:
        ident = chunk.id
        usage = chunk.usage or usage
        if chunk.choices:
            text.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
    return "".join(text), usage, ident, finish


async def _openai_astream(stream: Any) -> tuple[str, Any, str | None, str | None]:
    text, usage, ident, finish = [], None, None, None
    async for chunk in stream:
        ident = chunk.id
        usage = chunk.usage or usage
        if chunk.choices:
            text.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
    return "".join(text), usage, ident, finish


@pytest.mark.parametrize("flavour", ["openrouter", "openai"])
@pytest.mark.parametrize("mode", ["sync", "async", "sync-stream", "async-stream"])
def test_openai_sdk(upstream, genai_span, flavour, mode):
    base = upstream.openrouter if flavour == "openrouter" else upstream.openai
    model = "openai/gpt-4o-mini" if flavour == "openrouter" else "gpt-4o-mini"
    kwargs: dict[str, Any] = {"model": model, "messages": MESSAGES, "max_tokens": 50, "temperature": 0.2}
    if mode.endswith("stream"):
        kwargs.update(stream=True, stream_options={"include_usage": True})
    if mode == "sync":
        result = openai.OpenAI(base_url=base, api_key="k").chat.completions.create(**kwargs)
        text, usage, ident, finish = (result.choices[0].message.content, result.usage, result.id,
                                      result.choices[0].finish_reason)
    elif mode == "async":
        result = asyncio.run(openai.AsyncOpenAI(base_url=base, api_key="k").chat.completions.create(**kwargs))
        text, usage, ident, finish = (result.choices[0].message.content, result.usage, result.id,
                                      result.choices[0].finish_reason)
    elif mode == "sync-stream":
        client = openai.OpenAI(base_url=base, api_key="k")
        text, usage, ident, finish = _openai_stream(client.chat.completions.create(**kwargs))
    else:
        async def run() -> Any:
            client = openai.AsyncOpenAI(base_url=base, api_key="k")
            return await _openai_astream(await client.chat.completions.create(**kwargs))

        text, usage, ident, finish = asyncio.run(run())
    assert text == "Echo: count the stars tonight"
    span = genai_span()
    a = span.attributes
    assert span.name == f"chat {model}"
    assert a["gen_ai.provider.name"] == flavour
    assert a["gen_ai.request.model"] == model
    assert a["gen_ai.request.max_tokens"] == 50
    assert a["gen_ai.request.temperature"] == 0.2
    assert a["gen_ai.response.id"] == ident
    assert a["gen_ai.usage.input_tokens"] == usage.prompt_tokens
    assert a["gen_ai.usage.output_tokens"] == usage.completion_tokens
    assert a["gen_ai.response.finish_reasons"] == [finish]
    assert a["gen_ai.request.stream"] is mode.endswith("stream")
    if mode.endswith("stream"):
        assert 0 < a["gen_ai.response.time_to_first_chunk"] < span.duration_s
    if flavour == "openrouter":
        assert a["gen_ai.usage.cost"] == pytest.approx(usage.cost)  # type: ignore[attr-defined]
        assert a["or_middleware.cost.source"] == "provider"
    else:  # priced from the genai-prices table
        assert a["or_middleware.cost.source"] == "price_table"
        assert a["gen_ai.usage.cost"] > 0
    assert span.status_code == "UNSET"


@pytest.mark.parametrize("mode", ["sync", "async", "sync-stream", "async-stream"])
def test_anthropic_sdk(upstream, genai_span, mode):
    kwargs: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 64, "system": "be brief",
                              "messages": [{"role": "user", "content": "name a planet"}]}
    if mode == "sync":
        message = anthropic.Anthropic(base_url=upstream.anthropic, api_key="k").messages.create(**kwargs)
    elif mode == "async":
        async_client = anthropic.AsyncAnthropic(base_url=upstream.anthropic, api_key="k")
        message = asyncio.run(async_client.messages.create(**kwargs))
    elif mode == "sync-stream":
        with anthropic.Anthropic(base_url=upstream.anthropic, api_key="k").messages.stream(**kwargs) as stream:
            message = stream.get_final_message()
    else:
        async def run() -> Any:
            client = anthropic.AsyncAnthropic(base_url=upstream.anthropic, api_key="k")
            async with client.messages.stream(**kwargs) as stream:
                return await stream.get_final_message()

        message = asyncio.run(run())
    assert message.content[0].text == "Echo: name a planet"
    span = genai_span()
    a = span.attributes
    assert span.name == "chat claude-sonnet-4-5"
    assert a["gen_ai.provider.name"] == "anthropic"
    assert a["gen_ai.response.id"] == message.id
    usage = message.usage
    cached = (usage.cache_read_input_tokens or 0) + (usage.cache_creation_input_tokens or 0)
    assert a["gen_ai.usage.input_tokens"] == usage.input_tokens + cached
    assert a["gen_ai.usage.output_tokens"] == usage.output_tokens
    assert a["gen_ai.response.finish_reasons"] == [message.stop_reason]
    if mode.endswith("stream"):
        assert a["gen_ai.response.time_to_first_chunk"] > 0
    assert a["or_middleware.cost.source"] == "price_table"


@pytest.mark.parametrize("mode", ["sync", "async", "sync-stream"])
def test_openrouter_sdk(upstream, genai_span, mode):
    from openrouter import OpenRouter

    client = OpenRouter(api_key="sk-or-v1-x", server_url=upstream.openrouter)
    messages = [{"role": "user", "content": "hello router"}]
    if mode == "sync":
        result = client.chat.send(model="openai/gpt-4o-mini", messages=messages)
        ident = result.id
    elif mode == "async":
        result = asyncio.run(client.chat.send_async(model="openai/gpt-4o-mini", messages=messages))
        ident = result.id
    else:
        ident = None
        for event in client.chat.send(model="openai/gpt-4o-mini", messages=messages, stream=True):
            ident = getattr(event, "id", None) or ident
    span = genai_span()
    a = span.attributes
    assert a["gen_ai.provider.name"] == "openrouter"
    assert a["gen_ai.response.id"] == ident
    assert a["gen_ai.usage.cost"] > 0
    assert upstream.received[-1].json["trace"]["parent_span_id"] == span.span_id
