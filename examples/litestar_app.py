"""Litestar: async and sync handlers and a background task, each calling an LLM through the openai SDK.

    OPENROUTER_API_KEY=sk-or-v1-... uvicorn examples.litestar_app:app --port 8000
    curl -s localhost:8000/ask -H 'x-user-id: alice' -H 'content-type: application/json' -d '{"question": "hi"}'

The middleware wraps the whole Litestar app as plain ASGI (``LLMTracingMiddleware(Litestar(...))``):
Litestar builds a middleware stack per route, which would build one tracing runtime per route.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import openai
from litestar import Litestar, Response, post
from litestar.background_tasks import BackgroundTask
from litestar.params import JSONBody

from or_middleware import LLMTracingMiddleware, Settings

MODEL = os.environ.get("LLM_MODEL", "openai/gpt-4o-mini")


def create_app(llm_base_url: str | None = None, settings: Settings | None = None) -> LLMTracingMiddleware:
    base_url = llm_base_url or os.environ.get("LLM_BASE_URL", "https://openrouter.ai/api/v1")
    api_key = os.environ.get("OPENROUTER_API_KEY", "sk-or-v1-unset")
    async_client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key)
    sync_client = openai.OpenAI(base_url=base_url, api_key=api_key)

    @post("/ask", status_code=200)
    async def ask(data: JSONBody[dict[str, str]]) -> dict[str, Any]:
        completion = await async_client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": data["question"]}]
        )
        return {"answer": completion.choices[0].message.content, "id": completion.id}

    @post("/ask-sync", status_code=200, sync_to_thread=True)
    def ask_sync(data: JSONBody[dict[str, str]]) -> dict[str, Any]:
        completion = sync_client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": data["question"]}]
        )
        return {"answer": completion.choices[0].message.content, "id": completion.id}

    @post("/ask-later", status_code=202)
    async def ask_later(data: JSONBody[dict[str, str]]) -> Response[dict[str, bool]]:
        async def summarise() -> None:  # runs after the response is sent; still in the request's trace
            await async_client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": f"summarise: {data['question']}"}]
            )

        return Response({"queued": True}, status_code=202, background=BackgroundTask(summarise))

    return LLMTracingMiddleware(Litestar(route_handlers=[ask, ask_sync, ask_later]), settings=settings)


@functools.cache
def _app_from_env() -> LLMTracingMiddleware:
    return create_app()


def __getattr__(name: str) -> LLMTracingMiddleware:  # `uvicorn examples.litestar_app:app` builds it on first use
    if name == "app":
        return _app_from_env()
    raise AttributeError(name)
