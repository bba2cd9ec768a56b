"""Example apps the tests run under real servers: they call LLM APIs as a user's app would."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from flask import Flask
from flask import Response as FlaskResponse
from flask import request as flask_request

AUTH = {"Authorization": "Bearer sk-or-v1-CANARYKEY0000000000000000000000000000"}


def chat_body(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}


def fastapi_app(llm_base: str, *, other_url: str | None = None) -> FastAPI:
    """Routes that call the LLM at ``llm_base`` with httpx (async, sync, streaming) and the openai SDK."""
    app = FastAPI()

    @app.post("/ask")
    async def ask(request: Request) -> Response:
        body = await request.json()
        async with httpx.AsyncClient(headers=AUTH) as client:
            upstream = await client.post(f"{llm_base}/chat/completions", json=body)
        return Response(upstream.content, status_code=upstream.status_code, media_type="application/json")

    @app.post("/ask-sync")
    def ask_sync(body: dict[str, Any]) -> Response:  # runs in Starlette's threadpool
        with httpx.Client(headers=AUTH) as client:
            upstream = client.post(f"{llm_base}/chat/completions", json=body)
        return Response(upstream.content, status_code=upstream.status_code, media_type="application/json")

    @app.post("/relay")
    async def relay(request: Request) -> StreamingResponse:
        body = await request.json()
        client = httpx.AsyncClient(headers=AUTH, timeout=30)
        scenario = {k: v for k, v in request.headers.items() if k.startswith("x-fake-")}  # fake upstream switches
        upstream = await client.send(
            client.build_request("POST", f"{llm_base}/chat/completions", json=body, headers=scenario), stream=True
        )

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in upstream.aiter_raw():
                    yield chunk
            finally:
                await upstream.aclose()
                await client.aclose()

        return StreamingResponse(chunks(), media_type="text/event-stream")

    @app.post("/ask-sdk")
    async def ask_sdk(request: Request) -> dict[str, Any]:
        import openai

        body = await request.json()
        client = openai.AsyncOpenAI(base_url=llm_base, api_key="sk-or-v1-CANARYKEY")
        completion = await client.chat.completions.create(**body)
        return {"content": completion.choices[0].message.content, "id": completion.id}

    @app.get("/not-llm")
    async def not_llm() -> dict[str, int]:
        async with httpx.AsyncClient() as client:
            upstream = await client.get(other_url or f"{llm_base}/models")
        return {"status": upstream.status_code}

    return app


def flask_app(llm_base: str) -> Flask:
    app = Flask(__name__)

    @app.post("/ask")
    def ask() -> FlaskResponse:
        with httpx.Client(headers=AUTH) as client:
            upstream = client.post(f"{llm_base}/chat/completions", json=flask_request.get_json())
        return FlaskResponse(upstream.content, status=upstream.status_code, mimetype="application/json")

    @app.post("/relay")
    def relay() -> FlaskResponse:
        body = flask_request.get_json()

        def chunks() -> Iterator[bytes]:
            with httpx.Client(headers=AUTH) as client, client.stream(
                "POST", f"{llm_base}/chat/completions", json=body
            ) as upstream:
                yield from upstream.iter_raw()

        return FlaskResponse(chunks(), mimetype="text/event-stream")

    return app
