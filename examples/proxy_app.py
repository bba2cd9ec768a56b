"""An OpenAI-compatible gateway that serves /v1/chat/completions itself and forwards to OpenRouter.

The client's `traceparent` is continued, its own `user` / `session_id` / `trace` fields reach
OpenRouter unchanged, linkage is added, and the SSE answer is relayed chunk by chunk.

    OPENROUTER_API_KEY=sk-or-v1-... uvicorn examples.proxy_app:app --port 8000
"""

from __future__ import annotations

import os

import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from or_middleware import LLMTracingMiddleware, Settings

_FORWARDED_HEADERS = ("content-type", "http-referer", "x-openrouter-title", "x-title")


def create_app(upstream_base: str, api_key: str | None = None, settings: Settings | None = None) -> Starlette:
    client = httpx.AsyncClient(timeout=httpx.Timeout(60, read=300))

    async def chat_completions(request: Request) -> StreamingResponse:
        headers = {name: request.headers[name] for name in _FORWARDED_HEADERS if name in request.headers}
        headers["authorization"] = f"Bearer {api_key}" if api_key else request.headers.get("authorization", "")
        upstream = await client.send(
            client.build_request(
                "POST", f"{upstream_base}/chat/completions", content=await request.body(), headers=headers
            ),
            stream=True,
        )
        return StreamingResponse(
            upstream.aiter_raw(),
            status_code=upstream.status_code,
            media_type=upstream.headers.get("content-type"),
            background=BackgroundTask(upstream.aclose),
        )

    app = Starlette(routes=[Route("/v1/chat/completions", chat_completions, methods=["POST"])])
    app.add_middleware(LLMTracingMiddleware, settings=settings)
    return app


def _app_from_env() -> Starlette:
    return create_app(
        os.environ.get("OPENROUTER_BASE_URL", "https://openrouter.ai/api/v1"), os.environ.get("OPENROUTER_API_KEY")
    )


def __getattr__(name: str) -> Starlette:  # `uvicorn examples.proxy_app:app` builds it on first use
    if name == "app":
        return _app_from_env()
    raise AttributeError(name)
