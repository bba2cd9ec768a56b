"""The demo's example app: a FastAPI service whose routes call an LLM API through httpx.

``LLM_BASE_URL`` is the OpenRouter-compatible API it calls (the demo points it at the local
fake upstream). The app itself knows nothing of tracing: the middleware is added by the demo.
"""

from __future__ import annotations

import os

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse


def create_app(llm_base_url: str | None = None) -> FastAPI:
    base_url = llm_base_url or os.environ.get("LLM_BASE_URL", "https://openrouter.ai/api/v1")
    api_key = os.environ.get("OPENROUTER_API_KEY", "sk-or-v1-demo")
    app = FastAPI(title="or_middleware demo shop")
    headers = {"Authorization": f"Bearer {api_key}"}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    async def complete(question: str, model: str = "openai/gpt-4o-mini", feature: str | None = None) -> str:
        body: dict = {"model": model, "messages": [{"role": "user", "content": question}]}
        if feature:
            body["trace"] = {"feature": feature}  # custom trace metadata (OpenRouter Broadcast's trace object)
        async with httpx.AsyncClient(base_url=base_url, headers=headers) as client:
            response = await client.post("/chat/completions", json=body)
        if response.status_code != 200:
            return f"(the LLM API answered {response.status_code})"
        return response.json()["choices"][0]["message"]["content"]

    @app.post("/ask")
    async def ask(request: Request) -> dict[str, str]:
        body = await request.json()
        answer = await complete(body.get("question", "hello"), body.get("model", "openai/gpt-4o-mini"),
                                body.get("feature"))
        return {"answer": answer}

    @app.post("/plan")
    async def plan(request: Request) -> dict[str, str]:
        """Two LLM calls in one request: a cheap model drafts a plan, a larger one answers."""
        goal = (await request.json()).get("goal", "a picnic")
        draft = await complete(f"Draft a plan for {goal}", "openai/gpt-4o-mini", "planner")
        return {"answer": await complete(f"Improve this plan: {draft}", "anthropic/claude-sonnet-4", "planner")}

    @app.get("/stream")
    async def stream(q: str = "tell me a story") -> StreamingResponse:
        async def relay():  # type: ignore[no-untyped-def]
            async with (
                httpx.AsyncClient(base_url=base_url, headers=headers) as client,
                client.stream(
                    "POST",
                    "/chat/completions",
                    json={
                        "model": "anthropic/claude-sonnet-4",
                        "stream": True,
                        "messages": [{"role": "user", "content": q}],
                    },
                ) as response,
            ):
                async for chunk in response.aiter_raw():
                    yield chunk

        return StreamingResponse(relay(), media_type="text/event-stream")

    return app
