"""Flask under a real WSGI server: a sync and an async view and a background thread, each calling
an LLM through the openai SDK.

    OPENROUTER_API_KEY=sk-or-v1-... gunicorn examples.flask_app:app --bind 127.0.0.1:8000
    OPENROUTER_API_KEY=sk-or-v1-... waitress-serve --listen 127.0.0.1:8000 examples.flask_app:app
    curl -s localhost:8000/ask -H 'x-user-id: alice' -H 'content-type: application/json' -d '{"question": "hi"}'

Async views need Flask's ``async`` extra (asgiref). Work started in another thread keeps the
request's trace when the thread runs in a copy of the request's context (``copy_context().run``).
"""

from __future__ import annotations

import contextvars
import functools
import os
import threading
from typing import Any

import openai
from flask import Flask, request

from or_middleware import LLMTracingWSGIMiddleware, Settings

MODEL = os.environ.get("LLM_MODEL", "openai/gpt-4o-mini")


def create_app(llm_base_url: str | None = None, settings: Settings | None = None) -> Flask:
    base_url = llm_base_url or os.environ.get("LLM_BASE_URL", "https://openrouter.ai/api/v1")
    api_key = os.environ.get("OPENROUTER_API_KEY", "sk-or-v1-unset")
    client = openai.OpenAI(base_url=base_url, api_key=api_key)
    app = Flask(__name__)

    @app.post("/ask-sync")
    def ask_sync() -> dict[str, Any]:
        question = request.get_json()["question"]
        completion = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": question}])
        return {"answer": completion.choices[0].message.content, "id": completion.id}

    @app.post("/ask")
    async def ask() -> dict[str, Any]:
        question = request.get_json()["question"]
        async with openai.AsyncOpenAI(base_url=base_url, api_key=api_key) as async_client:
            completion = await async_client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": question}]
            )
        return {"answer": completion.choices[0].message.content, "id": completion.id}

    @app.post("/ask-later")
    def ask_later() -> tuple[dict[str, bool], int]:
        question = request.get_json()["question"]

        def summarise() -> None:  # runs after the response is sent; still in the request's trace
            client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": f"summarise: {question}"}]
            )

        threading.Thread(target=contextvars.copy_context().run, args=(summarise,), daemon=True).start()
        return {"queued": True}, 202

    app.wsgi_app = LLMTracingWSGIMiddleware(app.wsgi_app, settings=settings)  # type: ignore[method-assign]
    return app


@functools.cache
def _app_from_env() -> Flask:
    return create_app()


def __getattr__(name: str) -> Flask:  # `gunicorn examples.flask_app:app` builds it on first use
    if name == "app":
        return _app_from_env()
    raise AttributeError(name)
