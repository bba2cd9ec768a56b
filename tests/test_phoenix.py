"""End to end against a real Arize Phoenix: ``phoenix serve`` on a free loopback port with its own
working directory, a real request through the middleware with the ``phoenix`` destination, then
Phoenix's REST API shows our span under the configured project as an LLM span with model,
tokens and cost, nested under the request's span, and without content when privacy mode is on.
(tests/test_phoenix_comparison.py compares ours with OpenInference's own spans in the same Phoenix.)

Phoenix lives in its own venv (``scripts/phoenix-venv.sh``; it pins anthropic<2, our tests use the
current SDK). Skipped when it is not installed, except where ``REQUIRE_PHOENIX_TEST=1``
(``scripts/test.sh``, hence CI): there a missing Phoenix fails the run.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import or_middleware
from or_middleware import LLMTracingMiddleware, Settings
from or_middleware.config import PhoenixDestination
from or_middleware.demo.serving import serve_asgi
from or_middleware.export.openinference import PRIVACY_PLACEHOLDER
from tests.apps import chat_body, fastapi_app

pytestmark = pytest.mark.phoenix

ROOT = Path(__file__).resolve().parents[1]
CANARY = "canary.phoenix@example.com"
PRIVATE_PROJECT = "or-middleware-e2e"
OPEN_PROJECT = "or-middleware-e2e-open"
STARTUP_TIMEOUT_S = 300  # a loaded 2-core machine: Phoenix has taken over 120 s to start


def phoenix_command() -> list[str] | None:
    for candidate in (os.environ.get("PHOENIX_BIN"), ROOT / ".venv-phoenix" / "bin" / "phoenix",
                      shutil.which("phoenix")):
        if candidate and Path(candidate).is_file():
            return [str(candidate), "serve"]
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    command = phoenix_command()
    if command is None:
        if os.environ.get("REQUIRE_PHOENIX_TEST") == "1":
            pytest.fail("Arize Phoenix is not installed: run scripts/phoenix-venv.sh")
        pytest.skip("Arize Phoenix is not installed (scripts/phoenix-venv.sh installs it)")
    workdir = tmp_path_factory.mktemp("phoenix")
    port, grpc_port = free_port(), free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "PHOENIX_WORKING_DIR": str(workdir),
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(grpc_port),
        "PHOENIX_TELEMETRY_ENABLED": "false",
        "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
    }
    log = (workdir / "phoenix.log").open("wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"phoenix serve did not start:\n{(workdir / 'phoenix.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


def project_spans(phoenix_url: str, project: str, timeout_s: float = 60) -> list[dict]:
    """Phoenix's REST API, polled until the project has spans (ingestion is asynchronous)."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = httpx.get(f"{phoenix_url}/v1/projects/{project}/spans", timeout=10)
        if answer.status_code == 200 and answer.json()["data"]:
            return answer.json()["data"]
        if time.monotonic() > deadline:
            raise AssertionError(f"no spans in Phoenix project {project}: {answer.status_code} {answer.text[:300]}; "
                                 f"our side: {or_middleware.stats()}")
        time.sleep(0.5)


def test_phoenix_shows_our_llm_span_with_model_tokens_cost_and_no_content(phoenix, upstream, tmp_path):
    common = {"endpoint": f"{phoenix}/v1/traces", "schedule_delay_ms": 20, "spool_dir": str(tmp_path)}
    # Phoenix keeps a span id once, so each project gets its own call: alice's and bob's.
    settings = Settings(
        service_name="shop",
        destinations=[
            PhoenixDestination(project=PRIVATE_PROJECT, filter=only_user("alice"), **common),  # privacy on: default
            PhoenixDestination(name="phoenix_open", project=OPEN_PROJECT, privacy_mode=False,
                               filter=only_user("bob"), **common),
        ],
        llm_hosts=f"openrouter={upstream.openrouter}",
    )
    app = fastapi_app(upstream.openrouter)
    app.add_middleware(LLMTracingMiddleware, settings=settings)
    body = chat_body(f"please write to {CANARY}", trace={"order": "A-17"})
    with serve_asgi(app) as url:
        answer = httpx.post(f"{url}/ask", json=body, headers={"x-user-id": "alice", "x-session-id": "sess-phoenix"},
                            timeout=30)
        assert answer.status_code == 200
        httpx.post(f"{url}/ask", json=body, headers={"x-user-id": "bob"}, timeout=30).raise_for_status()
        assert or_middleware.force_flush()
    usage = answer.json()["usage"]

    spans = wait_for_count(phoenix, PRIVATE_PROJECT, 2)
    [span] = [s for s in spans if s["span_kind"] == "LLM"]
    [root] = [s for s in spans if s["parent_id"] is None]
    a = span["attributes"]
    assert span["name"] == "chat openai/gpt-4o-mini"
    assert span["status_code"] == "OK"
    assert span["parent_id"] == root["context"]["span_id"]  # SPANS=traces: nested under the request's span
    assert root["span_kind"] == "CHAIN" and root["attributes"]["user.id"] == "alice"
    assert a["llm.model_name"] == answer.json()["model"]
    assert a["llm.provider"] == "openrouter"
    assert a["llm.token_count.prompt"] == usage["prompt_tokens"]
    assert a["llm.token_count.completion"] == usage["completion_tokens"]
    assert a["llm.token_count.total"] == usage["total_tokens"]
    assert a["llm.cost.total"] == pytest.approx(usage["cost"])
    assert a["session.id"] == "sess-phoenix" and a["user.id"] == "alice"
    # no content: no prompt, no messages, no completion; a clear placeholder instead
    assert a["input.value"] == a["output.value"] == PRIVACY_PLACEHOLDER
    assert not any(key.startswith(("llm.input_messages", "llm.output_messages")) for key in a)
    assert CANARY not in json.dumps(spans) and "Echo" not in json.dumps(spans)
    assert stats_exported("phoenix") == 2

    # the same call in the project with privacy mode off carries the content: the absence above is privacy
    [open_span] = [s for s in wait_for_count(phoenix, OPEN_PROJECT, 2) if s["span_kind"] == "LLM"]
    assert open_span["span_kind"] == "LLM"
    assert CANARY in open_span["attributes"]["input.value"]
    assert open_span["attributes"]["llm.output_messages.0.message.role"] == "assistant"


def wait_for_count(phoenix_url: str, project: str, count: int) -> list[dict]:
    deadline = time.monotonic() + 60
    while True:
        spans = project_spans(phoenix_url, project)
        if len(spans) >= count or time.monotonic() > deadline:
            return spans
        time.sleep(0.5)


def only_user(user: str) -> str:
    return json.dumps({"rules": [{"field": "user", "op": "equals", "value": user}]})


def stats_exported(name: str) -> int:
    return or_middleware.stats()[name]["exported"]
