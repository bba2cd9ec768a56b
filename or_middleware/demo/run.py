"""``or-middleware demo``: a fake OpenRouter, an example FastAPI app with the middleware, a few calls."""

from __future__ import annotations

import sys

import httpx

from or_middleware import LLMTracingMiddleware, Settings, force_flush
from or_middleware.demo.app import create_app
from or_middleware.demo.fake_upstream import create_fake_upstream
from or_middleware.demo.serving import serve_asgi


def run_demo(privacy_mode: bool = True) -> int:
    with serve_asgi(create_fake_upstream()) as upstream_url:
        llm_base = f"{upstream_url}/api/v1"
        settings = Settings(
            service_name="demo-shop",
            destinations=["console"],
            llm_hosts=f"openrouter={llm_base}",
            privacy_mode=privacy_mode,
        )
        app = create_app(llm_base)
        app.add_middleware(LLMTracingMiddleware, settings=settings)
        with serve_asgi(app) as app_url, httpx.Client(base_url=app_url, timeout=30) as client:
            print(f"fake OpenRouter at {llm_base}; demo app at {app_url}", file=sys.stderr)
            client.get("/health").raise_for_status()
            answer = client.post(
                "/ask",
                json={"question": "What is OpenTelemetry?"},
                headers={"x-user-id": "alice", "x-session-id": "session-42"},
            )
            answer.raise_for_status()
            print(f"POST /ask -> {answer.json()}", file=sys.stderr)
            with client.stream("GET", "/stream", params={"q": "stream me a haiku"}) as streamed:
                chunks = sum(1 for _ in streamed.iter_raw())
            print(f"GET /stream -> {chunks} chunks relayed", file=sys.stderr)
            force_flush()
    print("spans above: one tree per request, server span (SERVER) -> GenAI span (CLIENT) per LLM call",
          file=sys.stderr)
    if privacy_mode:
        print("prompts and answers are not shown (privacy mode): or-middleware demo --show-content", file=sys.stderr)
    return 0
