"""An in-process app for long runs: Starlette + the middleware, called through ``httpx.ASGITransport``,
whose LLM calls go to OpenRouter's real URL through a ``MockTransport`` (traced at the client
seam like any other transport). No sockets on the request path, so 10,000 requests take seconds.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from or_middleware import LLMTracingMiddleware, Settings
from tests.support.llm_wire import chat_frames, chat_json

LLM_URL = "https://openrouter.ai/api/v1/chat/completions"


async def _frames(words: list[str]) -> AsyncIterator[bytes]:
    for frame in chat_frames(words):
        yield frame


def fake_llm(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    text = body["messages"][-1]["content"]
    if body.get("stream"):
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=_frames(text.split()))
    return httpx.Response(200, headers={"content-type": "application/json"}, content=chat_json(text))


def build(settings: Settings) -> Any:
    llm = httpx.AsyncClient(transport=httpx.MockTransport(fake_llm))

    async def ask(request: Request) -> Response:
        body = await request.json()
        if not body.get("stream"):
            answer = await llm.post(LLM_URL, json=body)
            return Response(answer.content, media_type="application/json")
        upstream = await llm.send(llm.build_request("POST", LLM_URL, json=body), stream=True)

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for chunk in upstream.aiter_raw():
                    yield chunk
            finally:
                await upstream.aclose()

        return StreamingResponse(relay(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/ask", ask, methods=["POST"])])
    return LLMTracingMiddleware(app, settings=settings)


async def run_requests(app: Any, start: int, count: int, *, users: int = 50) -> None:
    """``count`` requests, half of them streamed, from ``users`` users with a session each."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        for i in range(start, start + count):
            body = {"model": "openai/gpt-4o-mini", "stream": i % 2 == 1,
                    "messages": [{"role": "user", "content": f"request {i} says hello"}]}
            headers = {"x-user-id": f"user-{i % users}", "x-session-id": f"session-{i}"}
            response = await client.post("/ask", json=body, headers=headers)
            assert response.status_code == 200
            assert f"request {i}".encode() in response.content or b"request" in response.content


async def call_directly(app: Any, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, bytes]:
    """One HTTP request straight into the ASGI app (no client, no transport): the cheapest real request."""
    raw = json.dumps(body).encode()
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/ask", "raw_path": b"/ask", "query_string": b"", "root_path": "",
        "headers": [(b"host", b"app"), (b"content-type", b"application/json"),
                    (b"content-length", str(len(raw)).encode()),
                    *((k.encode(), v.encode()) for k, v in headers.items())],
        "client": ("127.0.0.1", 40000), "server": ("app", 80),
    }
    sent = False
    status = 0
    out: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            out.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(out)


async def run_direct(app: Any, start: int, count: int, *, users: int = 50) -> None:
    for i in range(start, start + count):
        body = {"model": "openai/gpt-4o-mini", "stream": i % 2 == 1,
                "messages": [{"role": "user", "content": f"request {i} says hello"}]}
        status, content = await call_directly(app, body, {"x-user-id": f"user-{i % users}",
                                                          "x-session-id": f"session-{i}"})
        assert status == 200 and b"request" in content
