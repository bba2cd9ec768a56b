"""The Langfuse and LangSmith presets' default (``SPANS=traces``): a nested, populated view.

A real uvicorn app with the middleware calls the fake upstream through the openai SDK; each
preset points at a local OTLP receiver. The request's root span arrives carrying what the
backend reads for its trace list, its LLM spans nested under it, the request's input/output
only with privacy off, and a request that made no LLM call is not sent at all.

Vendor attribute mappings checked here:
- Langfuse, https://langfuse.com/docs/opentelemetry/get-started ("Property mapping"):
  ``langfuse.user.id``, ``langfuse.session.id``, ``langfuse.trace.name``,
  ``langfuse.trace.input`` / ``langfuse.trace.output``.
- LangSmith, https://docs.smith.langchain.com/observability/how_to_guides/trace_with_opentelemetry:
  ``langsmith.span.kind``, ``langsmith.trace.session_id``, ``langsmith.metadata.user_id``,
  ``gen_ai.prompt`` -> inputs, ``gen_ai.completion`` -> outputs.
"""

from __future__ import annotations

import json

import httpx
import openai
from fastapi import FastAPI

import or_middleware
from or_middleware import LLMTracingMiddleware, Settings
from or_middleware.config import LangfuseDestination, LangSmithDestination
from or_middleware.demo.serving import serve_asgi
from tests.support.otlp_receiver import OTLPReceiver

CONTENT_KEYS = ("langfuse.trace.input", "langfuse.trace.output", "gen_ai.prompt", "gen_ai.completion",
                "langfuse.observation.input", "langfuse.observation.output")


def tool_loop_app(llm_base: str) -> FastAPI:
    app = FastAPI()

    @app.post("/ask")
    async def ask(body: dict) -> dict:
        client = openai.AsyncOpenAI(base_url=llm_base, api_key="sk-or-v1-test", max_retries=0)
        messages = [{"role": "user", "content": body["question"]}]
        first = await client.chat.completions.create(model="openai/gpt-4o-mini", messages=messages)
        messages += [{"role": "assistant", "content": first.choices[0].message.content or ""},
                     {"role": "user", "content": "and then?"}]
        last = await client.chat.completions.create(model="openai/gpt-4o-mini", messages=messages)
        return {"answer": last.choices[0].message.content}

    @app.get("/health")
    async def health() -> dict:
        return {"ok": True}

    return app


def test_langfuse_and_langsmith_roots_carry_user_session_and_content_only_without_privacy(upstream, tmp_path):
    receivers = {name: OTLPReceiver().__enter__() for name in ("lf", "lf_private", "ls", "ls_private")}
    try:
        fast = {"schedule_delay_ms": 20, "spool_dir": str(tmp_path), "metrics": False}
        destinations = [
            LangfuseDestination(name="lf", public_key="pk-lf-1", secret_key="sk-lf-1", host=receivers["lf"].url,
                                privacy_mode=False, **fast),
            LangfuseDestination(name="lf_private", public_key="pk-lf-2", secret_key="sk-lf-2",
                                host=receivers["lf_private"].url, **fast),
            LangSmithDestination(name="ls", api_key="lsv2-1", endpoint=receivers["ls"].url, privacy_mode=False,
                                 **fast),
            LangSmithDestination(name="ls_private", api_key="lsv2-2", endpoint=receivers["ls_private"].url, **fast),
        ]
        app = tool_loop_app(upstream.openrouter)
        settings = Settings(destinations=destinations, llm_hosts=f"openrouter={upstream.openrouter}")
        app.add_middleware(LLMTracingMiddleware, settings=settings)
        headers = {"x-user-id": "alice", "x-session-id": "sess-1"}
        with serve_asgi(app) as url, httpx.Client(base_url=url, timeout=30) as client:
            client.get("/health").raise_for_status()
            reply = client.post("/ask", json={"question": "CANARY-QUESTION-7"}, headers=headers)
            reply.raise_for_status()
            client.get("/health").raise_for_status()
            assert or_middleware.force_flush()
        answer = reply.json()["answer"]
        assert answer
        received = {name: r.wait_for_spans(count=3) for name, r in receivers.items()}
        assert or_middleware.force_flush()
    finally:
        for r in receivers.values():
            r.close()

    for name, spans in received.items():
        servers = [s for s in spans if s.kind == "SERVER"]
        llm = [s for s in spans if s.scope == "or_middleware"]
        assert len(servers) == 1 and servers[0].name.startswith("POST"), name  # /health: no LLM call, not sent
        root = servers[0]
        assert root.parent_span_id is None and len(llm) == 2, name
        assert all(s.parent_span_id == root.span_id and s.trace_id == root.trace_id for s in llm), name
        a = root.attributes
        private = name.endswith("_private")
        if name.startswith("lf"):
            assert a["langfuse.user.id"] == "alice" and a["langfuse.session.id"] == "sess-1"
            if not private:
                assert a["langfuse.trace.input"] == "CANARY-QUESTION-7"
                assert a["langfuse.trace.output"] == answer
        else:
            assert a["langsmith.span.kind"] == "chain"
            assert a["langsmith.trace.session_id"] == "sess-1" and a["langsmith.metadata.user_id"] == "alice"
            if not private:
                assert json.loads(a["gen_ai.prompt"]) == {"input": "CANARY-QUESTION-7"}
                assert json.loads(a["gen_ai.completion"]) == {"output": answer}
        if private:
            for span in spans:
                assert not set(CONTENT_KEYS) & set(span.attributes), (name, span.name)
                assert "CANARY-QUESTION-7" not in json.dumps(span.attributes), (name, span.name)
