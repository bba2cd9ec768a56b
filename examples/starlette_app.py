"""Starlette: an async and a sync endpoint and a background task, each calling an LLM with httpx.

    OPENROUTER_API_KEY=sk-or-v1-... uvicorn examples.starlette_app:app --port 8000
    curl -s localhost:8000/ask -H 'x-user-id: alice' -H 'content-type: application/json' -d '{"question": "hi"}'
"""

from __future__ import annotations

import functools
import os
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from or_middleware import LLMTracingMiddleware, Settings

MODEL = os.environ.get("LLM_MODEL", "openai/gpt-4o-mini")


def _chat(question: str) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": question}]}


def create_app(llm_base_url: str | None = None, settings: Settings | None = None) -> Starlette:
    base_url = llm_base_url or os.environ.get("LLM_BASE_URL", "https://openrouter.ai/api/v1")
    auth = {"Authorization": f"Bearer {os.environ.get('OPENROUTER_API_KEY', 'sk-or-v1-unset')}"}

    async def ask(request: Request) -> JSONResponse:
        question = (await request.json())["question"]
        async with httpx.AsyncClient(headers=auth, timeout=60) as client:
            answer = (await client.post(f"{base_url}/chat/completions", json=_chat(question))).json()
        return JSONResponse({"answer": answer["choices"][0]["message"]["content"], "id": answer["id"]})

    def ask_sync(request: Request) -> JSONResponse:  # a plain def endpoint: Starlette runs it in a thread
        question = request.query_params.get("question", "")
        with httpx.Client(headers=auth, timeout=60) as client:
            answer = client.post(f"{base_url}/chat/completions", json=_chat(question)).json()
        return JSONResponse({"answer": answer["choices"][0]["message"]["content"], "id": answer["id"]})

    async def ask_later(request: Request) -> JSONResponse:
        question = (await request.json())["question"]

        async def summarise() -> None:  # runs after the response is sent; still in the request's trace
            async with httpx.AsyncClient(headers=auth, timeout=60) as client:
                await client.post(f"{base_url}/chat/completions", json=_chat(f"summarise: {question}"))

        return JSONResponse({"queued": True}, status_code=202, background=BackgroundTask(summarise))

    return Starlette(
        routes=[
            Route("/ask", ask, methods=["POST"]),
            Route("/ask-sync", ask_sync, methods=["POST"]),
            Route("/ask-later", ask_later, methods=["POST"]),
        ],
        middleware=[Middleware(LLMTracingMiddleware, settings=settings)],
    )


@functools.cache
def _app_from_env() -> Starlette:
    return create_app()


def __getattr__(name: str) -> Starlette:  # `uvicorn examples.starlette_app:app` builds it on first use
    if name == "app":
        return _app_from_env()
    raise AttributeError(name)
