"""The real google-genai (Gemini API and Vertex AI), cohere, ollama, groq and mistralai SDKs, sync
and async, streaming and not, called from a FastAPI app under uvicorn with the middleware and no
setting at all, against the fake upstream speaking each API on its real paths (an unlisted
loopback host: detected by path and request shape).

For each call: exactly one GenAI span, the child of the request's server span, with the
provider name, model, tokens, finish reason and (streams) time to first chunk the SDK saw; and
the app's answer is the same as without the middleware.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cohere
import groq
import ollama
import pytest
from fastapi import FastAPI
from google import genai
from google.genai import types
from google.oauth2.credentials import Credentials
from mistralai.client import Mistral

import or_middleware
from or_middleware import LLMTracingMiddleware, Settings
from or_middleware.demo.serving import serve_asgi
from tests.conftest import otlp

PROMPT = "count the stars tonight"
USER = [{"role": "user", "content": PROMPT}]

Answer = dict[str, Any]  # text, input/output tokens and finish reason as the SDK reported them


def gemini(url: str, vertex: bool) -> genai.Client:
    options = types.HttpOptions(base_url=url)
    if vertex:  # static credentials: no Application Default Credentials lookup
        return genai.Client(vertexai=True, project="proj", location="us-central1", credentials=Credentials("t"),
                            http_options=options)
    return genai.Client(api_key="AIza-CANARY", http_options=options)


def mistral(url: str) -> Mistral:
    return Mistral(api_key="k", server_url=f"{url}/mistral")  # the fake's Mistral flavour (usage on the last chunk)


def gemini_call(url: str, vertex: bool, stream: bool) -> Answer:
    client = gemini(url, vertex)
    if stream:
        chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents=PROMPT))
        text, last = "".join(c.text or "" for c in chunks), chunks[-1]
    else:
        last = client.models.generate_content(model="gemini-2.5-flash", contents=PROMPT)
        text = last.text
    usage = last.usage_metadata
    return {"text": text, "in": usage.prompt_token_count, "out": usage.candidates_token_count,
            "finish": last.candidates[0].finish_reason.value}


def gemini_embed(url: str, vertex: bool) -> Answer:
    client = gemini(url, vertex)  # held: a collected client closes its connection pool mid-call
    result = client.models.embed_content(model="text-embedding-005", contents=["a b", "c"])
    return {"dims": len(result.embeddings[0].values)}


def cohere_answer(response: Any) -> Answer:
    return {"text": response.message.content[0].text, "in": int(response.usage.tokens.input_tokens),
            "out": int(response.usage.tokens.output_tokens), "finish": response.finish_reason}


def cohere_stream_answer(events: list[Any]) -> Answer:
    text = "".join(e.delta.message.content.text for e in events if e.type == "content-delta")
    end = events[-1]
    return {"text": text, "in": int(end.delta.usage.tokens.input_tokens),
            "out": int(end.delta.usage.tokens.output_tokens), "finish": end.delta.finish_reason}


def ollama_answer(parts: list[Any]) -> Answer:
    return {"text": "".join(p.message.content for p in parts), "in": parts[-1].prompt_eval_count,
            "out": parts[-1].eval_count, "finish": parts[-1].done_reason}


def openai_like(response: Any) -> Answer:
    return {"text": response.choices[0].message.content, "in": response.usage.prompt_tokens,
            "out": response.usage.completion_tokens, "finish": response.choices[0].finish_reason}


def groq_stream_answer(chunks: list[Any]) -> Answer:
    usage = chunks[-1].x_groq.usage
    return {"text": "".join(c.choices[0].delta.content or "" for c in chunks), "in": usage.prompt_tokens,
            "out": usage.completion_tokens, "finish": chunks[-1].choices[0].finish_reason}


def mistral_stream_answer(events: list[Any]) -> Answer:
    usage = next(e.data.usage for e in reversed(events) if e.data.usage)
    finish = next(c.finish_reason for e in reversed(events) for c in e.data.choices if c.finish_reason)
    return {"text": "".join(c.delta.content or "" for e in events for c in e.data.choices),
            "in": usage.prompt_tokens, "out": usage.completion_tokens, "finish": finish}


SYNC: dict[str, Callable[[str], Answer]] = {
    "gemini": lambda url: gemini_call(url, vertex=False, stream=False),
    "gemini-stream": lambda url: gemini_call(url, vertex=False, stream=True),
    "gemini-embed": lambda url: gemini_embed(url, vertex=False),
    "vertex": lambda url: gemini_call(url, vertex=True, stream=False),
    "vertex-stream": lambda url: gemini_call(url, vertex=True, stream=True),
    "vertex-embed": lambda url: gemini_embed(url, vertex=True),
    "cohere": lambda url: cohere_answer(cohere.ClientV2(api_key="k", base_url=url).chat(
        model="command-a-03-2025", messages=USER)),
    "cohere-stream": lambda url: cohere_stream_answer(list(cohere.ClientV2(api_key="k", base_url=url).chat_stream(
        model="command-a-03-2025", messages=USER))),
    "ollama": lambda url: ollama_answer([ollama.Client(host=url).chat(model="llama3.2", messages=USER)]),
    "ollama-stream": lambda url: ollama_answer(list(ollama.Client(host=url).chat(
        model="llama3.2", messages=USER, stream=True))),
    "groq": lambda url: openai_like(groq.Groq(api_key="k", base_url=url).chat.completions.create(
        model="llama-3.3-70b-versatile", messages=USER)),
    "groq-stream": lambda url: groq_stream_answer(list(groq.Groq(api_key="k", base_url=url).chat.completions.create(
        model="llama-3.3-70b-versatile", messages=USER, stream=True))),
    "mistral": lambda url: openai_like(mistral(url).chat.complete(model="mistral-small-latest", messages=USER)),
    "mistral-stream": lambda url: mistral_stream_answer(list(mistral(url).chat.stream(
        model="mistral-small-latest", messages=USER))),
}


async def _gemini_async(url: str, vertex: bool, stream: bool) -> Answer:
    client = gemini(url, vertex).aio  # aiohttp underneath when it is installed (the aiohttp seam)
    if stream:
        chunks = [c async for c in await client.models.generate_content_stream(model="gemini-2.5-flash",
                                                                                contents=PROMPT)]
        text, last = "".join(c.text or "" for c in chunks), chunks[-1]
    else:
        last = await client.models.generate_content(model="gemini-2.5-flash", contents=PROMPT)
        text = last.text
    usage = last.usage_metadata
    return {"text": text, "in": usage.prompt_token_count, "out": usage.candidates_token_count,
            "finish": last.candidates[0].finish_reason.value}


async def _async_call(case: str, url: str) -> Answer:
    if case.startswith(("gemini", "vertex")):
        return await _gemini_async(url, vertex=case.startswith("vertex"), stream=case.endswith("-stream"))
    if case == "cohere":
        return cohere_answer(await cohere.AsyncClientV2(api_key="k", base_url=url).chat(
            model="command-a-03-2025", messages=USER))
    if case == "cohere-stream":
        stream = cohere.AsyncClientV2(api_key="k", base_url=url).chat_stream(model="command-a-03-2025", messages=USER)
        return cohere_stream_answer([e async for e in stream])
    if case == "ollama":
        return ollama_answer([await ollama.AsyncClient(host=url).chat(model="llama3.2", messages=USER)])
    if case == "ollama-stream":
        stream = await ollama.AsyncClient(host=url).chat(model="llama3.2", messages=USER, stream=True)
        return ollama_answer([part async for part in stream])
    if case == "groq":
        return openai_like(await groq.AsyncGroq(api_key="k", base_url=url).chat.completions.create(
            model="llama-3.3-70b-versatile", messages=USER))
    if case == "groq-stream":
        stream = await groq.AsyncGroq(api_key="k", base_url=url).chat.completions.create(
            model="llama-3.3-70b-versatile", messages=USER, stream=True)
        return groq_stream_answer([c async for c in stream])
    if case == "mistral":
        return openai_like(await mistral(url).chat.complete_async(
            model="mistral-small-latest", messages=USER))
    assert case == "mistral-stream"
    stream = await mistral(url).chat.stream_async(model="mistral-small-latest", messages=USER)
    return mistral_stream_answer([e async for e in stream])


def provider_app(llm_url: str) -> FastAPI:
    app = FastAPI()

    @app.post("/sync/{case}")
    def call_sync(case: str) -> Answer:  # Starlette's threadpool, as a sync handler runs
        return SYNC[case](llm_url)

    @app.post("/async/{case}")
    async def call_async(case: str) -> Answer:
        return await _async_call(case, llm_url)

    return app


# case -> (provider name, operation, request model)
EXPECTED = {
    "gemini": ("gcp.gemini", "generate_content", "gemini-2.5-flash"),
    "vertex": ("gcp.vertex_ai", "generate_content", "gemini-2.5-flash"),
    "cohere": ("cohere", "chat", "command-a-03-2025"),
    "ollama": ("ollama", "chat", "llama3.2"),
    "groq": ("127.0.0.1", "chat", "llama-3.3-70b-versatile"),  # an OpenAI-compatible API on an unlisted host
    "mistral": ("127.0.0.1", "chat", "mistral-small-latest"),
}
CASES = [("sync", case) for case in SYNC] + [
    ("async", f"{name}{suffix}")
    for name in ("gemini", "vertex", "cohere", "ollama", "groq", "mistral")
    for suffix in ("", "-stream")
]


@pytest.mark.parametrize(("mode", "case"), CASES, ids=[f"{m}-{c}" for m, c in CASES])
def test_sdk_call_is_traced_once_with_no_configuration(upstream, receiver, mode, case):
    import httpx

    with serve_asgi(provider_app(upstream.url)) as bare_url:  # before any middleware exists in the process
        bare = httpx.post(f"{bare_url}/{mode}/{case}", timeout=60)
    traced = provider_app(upstream.url)
    traced.add_middleware(LLMTracingMiddleware, settings=Settings(destinations=[otlp(receiver)]))
    with serve_asgi(traced) as url:
        answer = httpx.post(f"{url}/{mode}/{case}", timeout=60)
        assert answer.status_code == 200, answer.text
        assert answer.json() == bare.json()  # the app's answer is unchanged
        or_middleware.force_flush()
        [span] = receiver.wait_for_spans(lambda s: s.scope == "or_middleware")
        server = receiver.wait_for_spans(lambda s: s.span_id == span.parent_span_id)[0]
        assert server.kind == "SERVER", [(s.name, s.kind) for s in receiver.spans]
    or_middleware.force_flush()
    assert len([s for s in receiver.spans if s.scope == "or_middleware"]) == 1
    assert all(b"CANARY" not in r.body for r in receiver.requests)  # the Gemini API key never leaves
    assert span.trace_id == server.trace_id
    a = span.attributes
    base = case.split("-")[0]
    provider, operation, model = EXPECTED[base]
    seen = answer.json()
    if case.endswith("-embed"):
        assert a["gen_ai.operation.name"] == "embeddings" and a["gen_ai.provider.name"] == provider
        assert a["gen_ai.request.model"] == "text-embedding-005"
        assert a["gen_ai.embeddings.dimension.count"] == seen["dims"]
        return
    assert (a["gen_ai.provider.name"], a["gen_ai.operation.name"], a["gen_ai.request.model"]) == (
        provider, operation, model)
    assert a["gen_ai.usage.input_tokens"] == seen["in"]
    assert a["gen_ai.usage.output_tokens"] == seen["out"]
    assert list(a["gen_ai.response.finish_reasons"]) == [seen["finish"]]
    assert "error.type" not in a
    if case.endswith("-stream"):
        assert a["gen_ai.request.stream"] is True
        assert a["gen_ai.response.time_to_first_chunk"] >= 0
        assert a["or_middleware.stream.chunk_count"] >= 2
        assert a["or_middleware.stream.outcome"] == "completed"


def test_an_ollama_error_inside_a_200_stream_is_the_span_error(upstream, receiver):
    app = FastAPI()

    @app.post("/ask")
    def ask() -> Answer:
        client = ollama.Client(host=upstream.url, headers={"x-fake-scenario": "midstream_error"})
        try:
            parts = list(client.chat(model="llama3.2", messages=USER, stream=True))
        except ollama.ResponseError as exc:
            return {"error": str(exc)}
        return {"parts": len(parts)}

    app.add_middleware(LLMTracingMiddleware, settings=Settings(destinations=[otlp(receiver)]))
    with serve_asgi(app) as url:
        import httpx

        assert "model runner stopped" in httpx.post(f"{url}/ask", timeout=60).json()["error"]
        [span] = receiver.wait_for_spans(lambda s: s.scope == "or_middleware")
    assert span.attributes["error.type"] == "error" and span.status_code == "ERROR"
