"""FastAPI: async and sync routes and a background task, each calling an LLM through the openai SDK.

    OPENROUTER_API_KEY=sk-or-v1-... uvicorn examples.fastapi_app:app --port 8000
    OPENROUTER_API_KEY=sk-or-v1-... hypercorn 'examples.fastapi_app:create_app()' --bind 127.0.0.1:8000
    curl -s localhost:8000/ask -H 'x-user-id: alice' -H 'x-session-id: s1' \
         -H 'content-type: application/json' -d '{"question": "hi"}'

Configuration comes from ``OR_MIDDLEWARE_*`` variables (see README, "Configuration").
"""

from __future__ import annotations

import functools
import os
from typing import Any

import openai
from fastapi import BackgroundTasks, FastAPI
from pydantic import BaseModel

from or_middleware import LLMTracingMiddleware, Settings

MODEL = os.environ.get("LLM_MODEL", "openai/gpt-4o-mini")


class Question(BaseModel):
    question: str


def create_app(llm_base_url: str | None = None, settings: Settings | None = None) -> FastAPI:
    base_url = llm_base_url or os.environ.get("LLM_BASE_URL", "https://openrouter.ai/api/v1")
    api_key = os.environ.get("OPENROUTER_API_KEY", "sk-or-v1-unset")
    async_client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key)
    sync_client = openai.OpenAI(base_url=base_url, api_key=api_key)
    app = FastAPI()

    @app.post("/ask")
    async def ask(q: Question) -> dict[str, Any]:
        completion = await async_client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": q.question}]
        )
        return {"answer": completion.choices[0].message.content, "id": completion.id}

    @app.post("/ask-sync")
    def ask_sync(q: Question) -> dict[str, Any]:  # FastAPI runs it in its threadpool
        completion = sync_client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": q.question}]
        )
        return {"answer": completion.choices[0].message.content, "id": completion.id}

    @app.post("/ask-later", status_code=202)
    async def ask_later(q: Question, tasks: BackgroundTasks) -> dict[str, bool]:
        async def summarise() -> None:  # runs after the response is sent; still in the request's trace
            await async_client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": f"summarise: {q.question}"}]
            )

        tasks.add_task(summarise)
        return {"queued": True}

    app.add_middleware(LLMTracingMiddleware, settings=settings)
    return app


@functools.cache
def _app_from_env() -> FastAPI:
    return create_app()


def __getattr__(name: str) -> FastAPI:  # `uvicorn examples.fastapi_app:app` builds it on first use
    if name == "app":
        return _app_from_env()
    raise AttributeError(name)
