"""Quart: async and sync routes and a background task, each calling an LLM through the openai SDK.

    OPENROUTER_API_KEY=sk-or-v1-... hypercorn 'examples.quart_app:create_app()' --bind 127.0.0.1:8000
    curl -s localhost:8000/ask -H 'x-user-id: alice' -H 'content-type: application/json' -d '{"question": "hi"}'

hypercorn evaluates the name in the module, so it takes the factory call (``uvicorn`` also takes
``examples.quart_app:app``).

Quart is ASGI: wrap ``app.asgi_app`` (Quart keeps its own ``app`` object for routes and config).
"""

from __future__ import annotations

import functools
import os
from typing import Any

import openai
from quart import Quart, request

from or_middleware import LLMTracingMiddleware, Settings

MODEL = os.environ.get("LLM_MODEL", "openai/gpt-4o-mini")


def create_app(llm_base_url: str | None = None, settings: Settings | None = None) -> Quart:
    base_url = llm_base_url or os.environ.get("LLM_BASE_URL", "https://openrouter.ai/api/v1")
    api_key = os.environ.get("OPENROUTER_API_KEY", "sk-or-v1-unset")
    async_client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key)
    sync_client = openai.OpenAI(base_url=base_url, api_key=api_key)
    app = Quart(__name__)

    @app.post("/ask")
    async def ask() -> dict[str, Any]:
        question = (await request.get_json())["question"]
        completion = await async_client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": question}]
        )
        return {"answer": completion.choices[0].message.content, "id": completion.id}

    @app.post("/ask-sync")
    def ask_sync() -> dict[str, Any]:  # Quart runs plain def routes in a thread
        question = request.args.get("question", "")
        completion = sync_client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": question}])
        return {"answer": completion.choices[0].message.content, "id": completion.id}

    @app.post("/ask-later")
    async def ask_later() -> tuple[dict[str, bool], int]:
        question = (await request.get_json())["question"]

        async def summarise() -> None:  # runs after the response is sent; still in the request's trace
            await async_client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": f"summarise: {question}"}]
            )

        app.add_background_task(summarise)
        return {"queued": True}, 202

    app.asgi_app = LLMTracingMiddleware(app.asgi_app, settings=settings)  # type: ignore[method-assign]
    return app


@functools.cache
def _app_from_env() -> Quart:
    return create_app()


def __getattr__(name: str) -> Quart:  # `uvicorn examples.quart_app:app` builds it on first use
    if name == "app":
        return _app_from_env()
    raise AttributeError(name)
