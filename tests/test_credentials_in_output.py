"""No credential byte in any log line, CLI output or file we write (issue 11, item 4).

On 154468c: endpoint URLs with ``user:password@`` or ``?api_key=`` were printed verbatim in the
destination-down warning and by ``or-middleware check``; a malformed ``OR_MIDDLEWARE_OTLP__HEADERS``
was echoed in the start-up error; PostHog's API key was written into spooled batch files. Here
every configured credential is a distinct canary, the app runs under uvicorn with real LLM calls,
and every log record, the CLI's output and every spooled byte are grepped.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import or_middleware
from or_middleware import LLMTracingMiddleware, Settings
from or_middleware.config import OtlpDestination, PostHogDestination
from or_middleware.demo.serving import serve_asgi
from tests.apps import fastapi_app
from tests.support.capture_receiver import CaptureReceiver
from tests.support.real_servers import REPO_ROOT, free_port

CRED = {
    "url password": "pw-" + "1a1a" * 5,
    "url query key": "qk-" + "2b2b" * 5,
    "bearer header": "tok-" + "3c3c" * 5,
    "echoed query key": "qk-" + "4d4d" * 5,
    "x-api-key header": "xk-" + "5e5e" * 5,
    "posthog key": "phc_" + "6f6f" * 5,
    "malformed header value": "raw-" + "7a7a" * 5,
}


# httpx sends a URL's user info as ``Authorization: Basic base64(user:password)``: that form too
BASIC = base64.b64encode(f"user:{CRED['url password']}".encode()).decode()


def leaked(text: str | bytes) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    found = [label for label, canary in CRED.items() if canary.encode() in data]
    return [*found, "url user info as Basic auth"] if BASIC.encode() in data else found


async def echoing_refusal(request: Request) -> JSONResponse:
    """A collector that refuses and quotes what it got (auth header, URL, body), as some do."""
    body = (await request.body())[:300].decode(errors="replace")
    message = f"bad credentials {request.headers.get('authorization')} {request.headers.get('x-api-key')} " \
              f"for {request.url} in {body}"
    return JSONResponse({"error": {"message": message}}, status_code=401)


@pytest.fixture
def echo_collector() -> Iterator[str]:
    app = Starlette(routes=[Route("/{path:path}", echoing_refusal, methods=["POST"])])
    with serve_asgi(app) as url:
        yield url


def down_url() -> str:
    return f"http://user:{CRED['url password']}@127.0.0.1:{free_port()}/v1/traces?api_key={CRED['url query key']}"


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    handler, root = _Records(), logging.getLogger()
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))  # exc_info included by format()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler.lines
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@contextlib.contextmanager
def one_call_served(upstream: Any, settings: Settings) -> Iterator[None]:
    """A FastAPI app with the middleware under uvicorn, after one real LLM call (flushed)."""
    app = fastapi_app(upstream.openrouter)
    app.add_middleware(LLMTracingMiddleware, settings=settings)
    with serve_asgi(app) as url:
        body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        httpx.post(f"{url}/ask", json=body, timeout=30).raise_for_status()
        or_middleware.force_flush(10_000)
        yield


def test_destination_down_and_refusal_log_lines_hold_no_credential(upstream, echo_collector, tmp_path, log_lines):
    fast: dict[str, Any] = {"schedule_delay_ms": 20, "spool_dir": str(tmp_path), "max_retries": 0}
    settings = Settings(destinations=[
        OtlpDestination(name="down", endpoint=down_url(), headers=f"authorization=Bearer {CRED['bearer header']}",
                        **fast),
        OtlpDestination(name="refusing", endpoint=f"{echo_collector}/v1/traces?api_key={CRED['echoed query key']}",
                        headers=f"x-api-key={CRED['x-api-key header']}", **fast),
        PostHogDestination(api_key=CRED["posthog key"], host=echo_collector, **fast),
    ], llm_hosts=f"openrouter={upstream.openrouter}")
    with one_call_served(upstream, settings):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (
                any("is not taking spans" in line for line in log_lines)
                and sum("refused" in line for line in log_lines) >= 2):
            time.sleep(0.05)
    text = "\n".join(log_lines)
    assert "down" in text and "is not taking spans" in text, text  # controls: the lines were written
    assert sum("refused" in line for line in log_lines) >= 2, text
    assert "bad credentials" in text  # the collector's own words are kept, its quotes of our keys are not
    bad = [line for line in log_lines if leaked(line)]
    assert not bad, bad


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OR_MIDDLEWARE_", "OTEL_"))}
    clean["PYTHONPATH"] = str(REPO_ROOT)
    return subprocess.run([sys.executable, "-m", "or_middleware", *args], env=clean | env, capture_output=True,
                          text=True, timeout=120, cwd=REPO_ROOT)


def test_or_middleware_check_prints_no_credential(echo_collector, tmp_path):
    env = {
        "OR_MIDDLEWARE_DESTINATIONS": "otlp,posthog",
        "OR_MIDDLEWARE_OTLP__ENDPOINT": f"{echo_collector.replace('//', '//user:' + CRED['url password'] + '@')}"
                                        f"/v1/traces?api_key={CRED['url query key']}",
        "OR_MIDDLEWARE_OTLP__HEADERS": f"authorization=Bearer {CRED['bearer header']}",
        "OR_MIDDLEWARE_POSTHOG__API_KEY": CRED["posthog key"],
        "OR_MIDDLEWARE_POSTHOG__HOST": echo_collector,
        "OR_MIDDLEWARE_SPOOL_DIR": str(tmp_path),
    }
    for args in ((), ("--dry-run",)):
        done = _cli(env, "check", *args)
        output = done.stdout + done.stderr
        assert ("FAIL" in output) if not args else ("OK" in output), output  # controls
        assert "api_key=REDACTED" in output, output
        assert not leaked(output), (leaked(output), output)


def test_a_malformed_headers_value_is_not_echoed(monkeypatch, log_lines, tmp_path):
    value = f"authorization=Bearer ok,{CRED['malformed header value']}"
    done = _cli({"OR_MIDDLEWARE_DESTINATIONS": "otlp", "OR_MIDDLEWARE_OTLP__HEADERS": value}, "check", "--dry-run")
    assert done.returncode == 2 and "OR_MIDDLEWARE_OTLP__HEADERS" in done.stderr, done.stderr
    assert not leaked(done.stdout + done.stderr), done.stderr
    # the same when a real server starts the app: it refuses to start, with one line, no value
    (tmp_path / "app.py").write_text("from starlette.applications import Starlette\n"
                                     "from or_middleware import LLMTracingMiddleware\n"
                                     "app = LLMTracingMiddleware(Starlette())\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OR_MIDDLEWARE_", "OTEL_"))}
    env |= {"PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{tmp_path}", "OR_MIDDLEWARE_DESTINATIONS": "otlp",
            "OR_MIDDLEWARE_OTLP__HEADERS": value}
    server = subprocess.run([sys.executable, "-m", "uvicorn", "app:app", "--port", str(free_port())], env=env,
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert server.returncode != 0 and "OR_MIDDLEWARE_OTLP__HEADERS" in server.stderr, server.stderr
    assert not leaked(server.stdout + server.stderr), server.stderr
    # the standard variable: a malformed entry is skipped with a warning that does not quote it
    monkeypatch.setenv("OR_MIDDLEWARE_DESTINATIONS", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", value)
    LLMTracingMiddleware(Starlette())
    text = "\n".join(log_lines)
    assert "OTEL_EXPORTER_OTLP_HEADERS" in text and not leaked(text), text


def test_posthog_api_key_is_added_at_send_time_never_spooled(upstream, tmp_path):
    spool = tmp_path / "spool"
    with CaptureReceiver(status=503) as posthog:
        settings = Settings(destinations=[PostHogDestination(api_key=CRED["posthog key"], host=posthog.url,
                                                             schedule_delay_ms=20, spool_dir=str(spool),
                                                             max_retries=0)],
                            llm_hosts=f"openrouter={upstream.openrouter}")
        with one_call_served(upstream, settings):
            files = _wait_for(lambda: [p for p in spool.rglob("*") if p.is_file()])
            spooled = b"".join(p.read_bytes() for p in files)
            assert b'"batch"' in spooled and not leaked(spooled), spooled[:300]  # spooled, without the key
            refused = len(posthog.requests)
            posthog.status = 200  # back: the spooled batch goes out with the key added on the way
            _wait_for(lambda: len(posthog.requests) > refused)
    sent = posthog.requests[-1].json
    assert sent["api_key"] == CRED["posthog key"] and sent["batch"], sent
    assert all(r.json["api_key"] == CRED["posthog key"] for r in posthog.requests)


def _wait_for(probe: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_spool_files_of_every_destination_hold_no_credential(tmp_path: Path) -> None:
    """Whatever was spooled above, the spool directories themselves are named by a hash, not the URL."""
    from or_middleware.export.destinations import spool_directory, wire_target

    dest = OtlpDestination(endpoint=down_url(), spool_dir=str(tmp_path))
    settings = Settings(destinations=[dest])
    directory = spool_directory(dest, settings, wire_target(dest, settings))
    assert not leaked(str(directory))
