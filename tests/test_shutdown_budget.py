"""One total shutdown budget (issue 11 item 9): with three destinations that accept connections and
never answer, the server still exits within ``OR_MIDDLEWARE_SHUTDOWN_BUDGET_S`` of flushing (plus
the server's own stop), and every destination's unsent batch is in its spool for the next start.

Real servers as child processes: uvicorn (ASGI lifespan shutdown, then exit) and gunicorn sync
workers (WSGI: the exit only). On 154468c the waits added up per destination (53 s for three).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.apps import chat_body
from tests.support.real_servers import REPO_ROOT, free_port, venv_command, wait_until_serving
from tests.support.silent import silent_ports

ASGI_APP = """
import os

import httpx
from fastapi import FastAPI
from or_middleware import LLMTracingMiddleware

app = FastAPI()
app.add_middleware(LLMTracingMiddleware)


@app.post("/ask")
def ask(body: dict) -> dict:
    return httpx.post(os.environ["LLM_BASE_URL"] + "/chat/completions", json=body).json()
"""

WSGI_APP = """
import os

import httpx
from flask import Flask, request
from or_middleware import LLMTracingWSGIMiddleware

flask_app = Flask(__name__)
flask_app.wsgi_app = LLMTracingWSGIMiddleware(flask_app.wsgi_app)
app = flask_app


@flask_app.post("/ask")
def ask():
    return httpx.post(os.environ["LLM_BASE_URL"] + "/chat/completions", json=request.get_json()).json()
"""

BUDGET_S = 1.0
# generous: the server's own stop and the interpreter's exit come on top of the budget; on
# 154468c three blackholed destinations took 53 s
EXIT_WITHIN_S = 20.0


@pytest.fixture
def blackholes() -> Iterator[list[int]]:
    """Three ports that accept connections and never answer a byte."""
    with silent_ports(3) as ports:
        yield ports


def _env(tmp_path: Path, upstream, ports: list[int]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OR_MIDDLEWARE_", "OTEL_"))}
    names = ["otlp", "otlp_b", "otlp_c"]
    env.update({
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO_ROOT)]),
        "PYTHONUNBUFFERED": "1",
        "LLM_BASE_URL": upstream.openrouter,
        "OR_MIDDLEWARE_LLM_HOSTS": f"openrouter={upstream.openrouter}",
        "OR_MIDDLEWARE_DESTINATIONS": ",".join(names),
        "OR_MIDDLEWARE_SHUTDOWN_BUDGET_S": str(BUDGET_S),
        "OR_MIDDLEWARE_SPOOL_DIR": str(tmp_path / "spool"),
    })
    for name, port in zip(names, ports, strict=True):
        prefix = f"OR_MIDDLEWARE_{name.upper()}__"
        env[prefix + "ENDPOINT"] = f"http://127.0.0.1:{port}/v1/traces"
        env[prefix + "SPANS"] = "genai"
        env[prefix + "METRICS"] = "false"
        env[prefix + "SCHEDULE_DELAY_MS"] = "60000"  # nothing leaves before the shutdown
    return env


def _serve_ask_and_stop(argv: list[str], port: int, tmp_path: Path, env: dict[str, str]) -> tuple[float, str]:
    process = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_serving(url, alive=lambda: process.poll() is None)
        answer = httpx.post(url + "/ask", json=chat_body("before shutdown"), timeout=30)
        assert answer.status_code == 200, answer.text
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            output = process.communicate(timeout=EXIT_WITHIN_S)[0]
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output = process.communicate(timeout=10)[0]
            pytest.fail(f"still running {EXIT_WITHIN_S}s after SIGTERM:\n{output[-3000:]}")
        return time.monotonic() - started, output
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def _spooled(tmp_path: Path) -> dict[str, int]:
    return {d.name.rsplit("-", 1)[0]: len(list(d.glob("*.batch"))) for d in (tmp_path / "spool").iterdir()}


def test_uvicorn_lifespan_shutdown_keeps_one_budget_for_three_dead_destinations(tmp_path, upstream, blackholes):
    (tmp_path / "app.py").write_text(ASGI_APP)
    port = free_port()
    argv = [venv_command("uvicorn"), "app:app", "--port", str(port), "--timeout-graceful-shutdown", "1"]
    took, output = _serve_ask_and_stop(argv, port, tmp_path, _env(tmp_path, upstream, blackholes))
    assert _spooled(tmp_path) == {"otlp": 1, "otlp_b": 1, "otlp_c": 1}, output  # kept for the next start
    assert "Traceback" not in output
    print(f"uvicorn exited {took:.1f}s after SIGTERM (budget {BUDGET_S}s)")


def test_wsgi_exit_keeps_one_budget_for_three_dead_destinations(tmp_path, upstream, blackholes):
    pytest.importorskip("flask")
    (tmp_path / "app.py").write_text(WSGI_APP)
    port = free_port()
    argv = [venv_command("gunicorn"), "--workers", "1", "--bind", f"127.0.0.1:{port}", "--graceful-timeout", "60",
            "app:app"]
    took, output = _serve_ask_and_stop(argv, port, tmp_path, _env(tmp_path, upstream, blackholes))
    assert _spooled(tmp_path) == {"otlp": 1, "otlp_b": 1, "otlp_c": 1}, output
    assert "Traceback" not in output
    print(f"gunicorn exited {took:.1f}s after SIGTERM (budget {BUDGET_S}s)")
