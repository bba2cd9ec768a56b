"""Deployment: gunicorn with uvicorn workers, pre-fork (``--preload``), configured by env vars only.

The app (and its exporters) is built in the gunicorn master, which also makes an LLM call before
forking, so the master's exporter thread and queue exist when the workers are forked: each
worker must start its own after the fork, export its own spans, and share the local store.
"""

from __future__ import annotations

import concurrent.futures
import sqlite3
import time

import httpx
import pytest

from tests.apps import chat_body
from tests.support.real_servers import free_port, serve_command, venv_command

PREFORK_APP = """
import os

import httpx
from fastapi import FastAPI

from or_middleware import LLMTracingMiddleware

BASE = os.environ["LLM_BASE_URL"]
api = FastAPI()


@api.post("/ask")
async def ask(body: dict) -> dict:
    async with httpx.AsyncClient() as client:
        answer = await client.post(BASE + "/chat/completions", json=body)
    return {"pid": os.getpid(), "id": answer.json()["id"]}


app = LLMTracingMiddleware(api)  # built at import: in the master, with --preload
httpx.post(BASE + "/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "warm-up"}]})
"""


def test_gunicorn_uvicorn_workers_prefork_export_from_every_worker(upstream, receiver, tmp_path):
    pytest.importorskip("gunicorn")
    (tmp_path / "prefork_app.py").write_text(PREFORK_APP)
    store = tmp_path / "traces.db"
    port = free_port()
    env = {
        "PYTHONPATH": str(tmp_path),
        "LLM_BASE_URL": upstream.openrouter,
        "OR_MIDDLEWARE_SERVICE_NAME": "prefork",
        "OR_MIDDLEWARE_DESTINATIONS": "otlp,local",
        "OR_MIDDLEWARE_OTLP__ENDPOINT": receiver.traces_url,
        "OR_MIDDLEWARE_OTLP__SCHEDULE_DELAY_MS": "50",
        "OR_MIDDLEWARE_LOCAL__PATH": str(store),
        "OR_MIDDLEWARE_LOCAL__SCHEDULE_DELAY_MS": "50",
        "OR_MIDDLEWARE_LLM_HOSTS": f"openrouter={upstream.openrouter}",
    }
    argv = [venv_command("gunicorn"), "--preload", "--workers", "2", "--worker-class", "uvicorn.workers.UvicornWorker",
            "--bind", f"127.0.0.1:{port}", "--graceful-timeout", "5", "prefork_app:app"]
    answers: list[dict] = []
    # no keep-alive: every request is a new connection, which ever worker accepts it
    no_reuse = httpx.Limits(max_keepalive_connections=0)
    with serve_command(argv, port, env) as url, httpx.Client(base_url=url, timeout=30, limits=no_reuse) as client:
        [warm_up] = receiver.wait_for_spans(lambda s: s.scope == "or_middleware")  # exported by the master

        def ask(i: int) -> dict:
            answer = client.post("/ask", json=chat_body(f"request {i}"), headers={"x-user-id": f"u{i}"})
            answer.raise_for_status()
            return answer.json()

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            for _ in range(40):  # the kernel decides which worker accepts; ask until both have served
                answers += pool.map(ask, range(len(answers), len(answers) + 8))
                if len({a["pid"] for a in answers}) >= 2:
                    break
                time.sleep(0.1)  # a worker still booting
        assert len({a["pid"] for a in answers}) >= 2, "both workers served requests"
        spans = receiver.wait_for_spans(lambda s: s.scope == "or_middleware", count=len(answers) + 1)
    assert {s.attributes["gen_ai.response.id"] for s in spans} == {a["id"] for a in answers} | {
        warm_up.attributes["gen_ai.response.id"]}
    assert len(spans) == len(answers) + 1, "every span exported once, none twice"
    assert {s.resource["service.name"] for s in spans} == {"prefork"}
    # the workers and the master shared one local store: every GenAI span is in it, once
    with sqlite3.connect(store) as db:
        stored = [row[0] for row in db.execute("SELECT span_id FROM generations")]
    assert sorted(stored) == sorted(s.span_id for s in spans)
