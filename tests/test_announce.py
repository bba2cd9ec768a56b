"""Say what is happening: the start-up line and OR_MIDDLEWARE_DEBUG, seen where a user sees them
(the stderr of a real uvicorn that configures no logging for us, run from another directory)."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from or_middleware import LLMTracingMiddleware, Settings
from or_middleware.announce import startup_line, store_location
from or_middleware.config import LangfuseDestination, OtlpDestination
from or_middleware.demo.fake_upstream import create_fake_upstream
from or_middleware.demo.serving import serve_asgi
from tests.support.real_servers import REPO_ROOT, free_port, wait_until_serving

CANARY = "canary-secret-7f3a9"

APP = """
import httpx
from fastapi import FastAPI

from or_middleware import LLMTracingMiddleware

app = FastAPI()
app.add_middleware(LLMTracingMiddleware)


@app.get("/call")
def call(url: str) -> dict[str, int]:
    answer = httpx.post(url, json={"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    return {"status": answer.status_code}
"""


@contextlib.contextmanager
def uvicorn_in(directory: Path, env: dict[str, str]) -> Iterator[tuple[str, Path]]:
    """uvicorn serving ``app.py`` of ``directory``, its working directory; yields (url, log file)."""
    (directory / "app.py").write_text(APP)
    port = free_port()
    log = directory / "server.log"
    full_env = {**os.environ, **env, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app:app", "--port", str(port), "--log-level", "warning"],
            cwd=directory, env=full_env, stdout=out, stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_serving(url, alive=lambda: process.poll() is None)
            yield url, log
        finally:
            process.terminate()
            process.wait(30)


def wait_for_line(log: Path, text: str) -> str:
    for _ in range(200):
        content = log.read_text()
        if text in content:
            return content
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in the server's output:\n{content}")


def test_the_start_up_line_says_where_spans_go_without_credentials(tmp_path):
    env = {
        "OR_MIDDLEWARE_DESTINATIONS": "local,otlp,langfuse",
        "OR_MIDDLEWARE_OTLP__ENDPOINT": f"http://user:{CANARY}@127.0.0.1:1/v1/traces",
        "OR_MIDDLEWARE_OTLP__HEADERS": f"authorization=Bearer {CANARY}",
        "OR_MIDDLEWARE_OTLP__PRIVACY_MODE": "false",
        "OR_MIDDLEWARE_LANGFUSE__PUBLIC_KEY": f"pk-{CANARY}",
        "OR_MIDDLEWARE_LANGFUSE__SECRET_KEY": f"sk-{CANARY}",
        "OR_MIDDLEWARE_LLM_HOSTS": f"vllm=http://me:{CANARY}@gpu:8000/v1",
        "OR_MIDDLEWARE_SERVICE_NAME": "shop",
        "OR_MIDDLEWARE_SPOOL_DIR": str(tmp_path / "spool"),
    }
    with uvicorn_in(tmp_path, env) as (_url, log):
        output = wait_for_line(log, "or_middleware 0")
    [line] = [line for line in output.splitlines() if line.startswith("or_middleware ")]
    assert "service 'shop'" in line
    assert f"local -> {tmp_path / 'or_traces.db'} (privacy on)" in line  # absolute, in the app's directory
    assert "otlp -> http://127.0.0.1:1/v1/traces (privacy off)" in line
    assert "langfuse -> https://cloud.langfuse.com/api/public/otel/v1/traces (privacy on)" in line
    assert "known API hosts (openrouter.ai, " in line
    assert "LLM_HOSTS vllm=http://gpu:8000/v1" in line and "any host by request shape" in line
    assert CANARY not in line  # (other modules' log lines are the privacy sweep's business)
    assert "debug" not in output


def test_debug_says_which_llm_looking_calls_were_traced_and_why_not(tmp_path):
    with serve_asgi(create_fake_upstream()) as known, serve_asgi(create_fake_upstream()) as unknown:
        # DETECT=listed: with the default (auto) the unknown host would be traced by request shape
        env = {"OR_MIDDLEWARE_DEBUG": "1", "OR_MIDDLEWARE_LLM_HOSTS": f"openrouter={known}/api/v1",
               "OR_MIDDLEWARE_DETECT": "listed"}
        with uvicorn_in(tmp_path, env) as (url, log):
            for target in (f"{known}/api/v1/chat/completions", f"{unknown}/v1/chat/completions", f"{known}/v1/other"):
                assert httpx.get(f"{url}/call", params={"url": target}, timeout=30).status_code == 200
            output = wait_for_line(log, f"POST {unknown}/v1/chat/completions not traced")
    assert f"POST {known}/api/v1/chat/completions traced as openrouter chat" in output
    assert "add the base URL to OR_MIDDLEWARE_LLM_HOSTS" in output
    assert "/v1/other" not in output  # not an LLM-looking path: not worth a line
    assert "debug on (OR_MIDDLEWARE_DEBUG)" in output


def test_an_app_that_configures_logging_gets_the_line_once_through_its_own_handlers(caplog, tmp_path):
    root = logging.getLogger()
    assert root.handlers  # pytest's capture handler plays the app's configured logging
    with caplog.at_level(logging.INFO, logger="or_middleware"):
        from starlette.applications import Starlette

        LLMTracingMiddleware(Starlette(), settings=Settings(destinations=["console"]))
    lines = [r for r in caplog.records if r.getMessage().startswith("or_middleware 0")]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO


def test_the_line_for_settings_made_in_code():
    settings = Settings(
        service_name="shop",
        destinations=[OtlpDestination(endpoint=f"http://collector:4318/v1/traces?key={CANARY}", privacy_mode=False),
                      LangfuseDestination(public_key="pk", secret_key=CANARY, host="https://eu.langfuse.example")],
    )
    line = startup_line(settings)
    assert "otlp -> http://collector:4318/v1/traces?key=REDACTED (privacy off)" in line
    assert "langfuse -> https://eu.langfuse.example/api/public/otel/v1/traces (privacy on)" in line
    assert CANARY not in line


@pytest.mark.parametrize("path", ["./or_traces.db", "~/traces/or.db", "relative/dir/x.db"])
def test_the_store_location_is_absolute(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Path(store_location(path)).is_absolute()
    location = store_location(f"postgresql://app:{CANARY}@db:5432/traces?password={CANARY}")
    assert location.startswith("postgresql://db:5432/traces") and CANARY not in location
