"""A bad configuration stops the server with one line naming the variable (issue 11 items 11-13).

Each server runs as a real child process with the bad environment: it must exit by itself
with our line in its output, never start and answer 500s. A server that runs no lifespan
(uvicorn ``--lifespan off``) fails every request with the same line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from or_middleware.config import ConfigError, Settings
from tests.support.real_servers import REPO_ROOT, free_port, venv_command, wait_until_serving

ASGI_APP = """
from fastapi import FastAPI
from or_middleware import LLMTracingMiddleware

app = FastAPI()
app.add_middleware(LLMTracingMiddleware)   # built by Starlette inside its first (lifespan) call


@app.get("/")
def root() -> dict:
    return {"ok": True}
"""

WSGI_APP = """
from flask import Flask
from or_middleware import LLMTracingWSGIMiddleware

flask_app = Flask(__name__)
flask_app.wsgi_app = LLMTracingWSGIMiddleware(flask_app.wsgi_app)
app = flask_app


@flask_app.get("/")
def root() -> dict:
    return {"ok": True}
"""

BAD_DESTINATION = {"OR_MIDDLEWARE_DESTINATIONS": "otlpp"}
BAD_LINE = "OR_MIDDLEWARE_DESTINATIONS: unknown destination 'otlpp'"


def _env(tmp_path: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OR_MIDDLEWARE_", "OTEL_"))}
    env.update(extra)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(REPO_ROOT)])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _run_until_exit(argv: list[str], tmp_path: Path, extra: dict[str, str]) -> tuple[int, str]:
    """The server must exit on its own (it refused to start); its exit status and output."""
    result = subprocess.run(argv, cwd=tmp_path, env=_env(tmp_path, extra), capture_output=True, text=True,
                            timeout=60, check=False)
    return result.returncode, result.stdout + result.stderr


def _app(tmp_path: Path, source: str) -> None:
    (tmp_path / "app.py").write_text(source)


SERVERS = {
    "uvicorn-lifespan-auto": lambda port: [venv_command("uvicorn"), "app:app", "--port", str(port)],
    "uvicorn-lifespan-on": lambda port: [venv_command("uvicorn"), "app:app", "--port", str(port), "--lifespan", "on"],
    "hypercorn": lambda port: [venv_command("hypercorn"), "app:app", "--bind", f"127.0.0.1:{port}"],
    "gunicorn-uvicorn-workers": lambda port: [
        venv_command("gunicorn"), "--workers", "2", "--worker-class", "uvicorn.workers.UvicornWorker",
        "--bind", f"127.0.0.1:{port}", "app:app",
    ],
}


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_an_asgi_server_refuses_to_start_with_the_variable_named(tmp_path, server):
    _app(tmp_path, ASGI_APP)
    status, output = _run_until_exit(SERVERS[server](free_port()), tmp_path, BAD_DESTINATION)
    assert BAD_LINE in output
    assert "appears unsupported" not in output  # uvicorn's "lifespan unsupported, starting anyway"
    assert "continuing without Lifespan support" not in output  # hypercorn's
    if server.startswith("gunicorn"):
        assert status != 0 and "Worker failed to boot" in output  # then gunicorn's own HaltServer stack
    elif server == "hypercorn":
        assert "Lifespan failure in startup" in output  # hypercorn's words (it exits 0, stack included)
    else:
        assert status != 0, output
        assert "Traceback" not in output  # one line, not a stack


@pytest.mark.parametrize("server", ["waitress", "gunicorn"])
def test_a_wsgi_server_refuses_to_start_with_the_variable_named(tmp_path, server):
    pytest.importorskip("flask")
    _app(tmp_path, WSGI_APP)
    port = free_port()
    argv = (
        [venv_command("waitress-serve"), f"--listen=127.0.0.1:{port}", "app:app"] if server == "waitress"
        else [venv_command("gunicorn"), "--workers", "2", "--bind", f"127.0.0.1:{port}", "app:app"]
    )
    status, output = _run_until_exit(argv, tmp_path, BAD_DESTINATION)
    assert status != 0, output
    assert BAD_LINE in output


def test_without_lifespan_every_request_fails_with_the_same_line(tmp_path):
    """A server that sends no lifespan messages cannot be stopped by us: no request half-works."""
    _app(tmp_path, ASGI_APP)
    port = free_port()
    argv = [venv_command("uvicorn"), "app:app", "--port", str(port), "--lifespan", "off"]
    process = subprocess.Popen(argv, cwd=tmp_path, env=_env(tmp_path, BAD_DESTINATION),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_serving(url, alive=lambda: process.poll() is None)
        statuses = [httpx.get(url + "/").status_code for _ in range(3)]
    finally:
        process.terminate()
        output = process.communicate(timeout=20)[0]
    assert statuses == [500, 500, 500]
    assert output.count(BAD_LINE) >= 3, output


CRASHERS = {
    "misspelled": ({"OR_MIDDLEWARE_OTLP__ENDPONT": "http://127.0.0.1:4318/v1/traces"},
                   "OR_MIDDLEWARE_OTLP__ENDPONT names no setting; did you mean OR_MIDDLEWARE_OTLP__ENDPOINT?"),
    "misspelled-labelled": ({"OR_MIDDLEWARE_DESTINATIONS": "otlp_tempo", "OR_MIDDLEWARE_OTLP_TEMPO__PROTOCL": "grpc"},
                            "did you mean OR_MIDDLEWARE_OTLP_TEMPO__PROTOCOL?"),
    "misspelled-destination": ({"OR_MIDDLEWARE_LANGFUS__HOST": "https://x"},
                               "did you mean OR_MIDDLEWARE_LANGFUSE__HOST?"),
    "port-out-of-range": ({"OR_MIDDLEWARE_LLM_HOSTS": "vllm=http://gpu:99999/v1"},
                          "OR_MIDDLEWARE_LLM_HOSTS='vllm=http://gpu:99999/v1': Value error, entry"),
    "spool-of-no-user": ({"OR_MIDDLEWARE_SPOOL_DIR": "~nosuchuser/x"},
                         "OR_MIDDLEWARE_SPOOL_DIR='~nosuchuser/x': Value error, cannot expand '~nosuchuser'"),
    "spool-is-a-file": ({"OR_MIDDLEWARE_SPOOL_DIR": "{tmp}/app.py"}, "OR_MIDDLEWARE_SPOOL_DIR="),
    "spool-under-a-file": ({"OR_MIDDLEWARE_OTLP__SPOOL_DIR": "{tmp}/app.py/spool"}, "OR_MIDDLEWARE_OTLP__SPOOL_DIR="),
    "missing-certificate": ({"OTEL_EXPORTER_OTLP_CERTIFICATE": "{tmp}/no-such-ca.pem"},
                            "OTEL_EXPORTER_OTLP_CERTIFICATE="),
    "not-a-certificate": ({"OTEL_EXPORTER_OTLP_CERTIFICATE": "{tmp}/app.py"}, "OTEL_EXPORTER_OTLP_CERTIFICATE"),
}


@pytest.mark.parametrize("case", sorted(CRASHERS))
def test_each_bad_setting_stops_uvicorn_naming_the_variable(tmp_path, case):
    env, expected = CRASHERS[case]
    env = {"OR_MIDDLEWARE_DESTINATIONS": "otlp", **{k: v.format(tmp=tmp_path) for k, v in env.items()}}
    _app(tmp_path, ASGI_APP)
    status, output = _run_until_exit(SERVERS["uvicorn-lifespan-auto"](free_port()), tmp_path, env)
    assert status != 0, output
    assert expected in output
    assert "Traceback" not in output


@pytest.mark.parametrize(("name", "suggestion"), [
    ("OR_MIDDLEWARE_PRIVACYMODE", "OR_MIDDLEWARE_PRIVACY_MODE"),
    ("OR_MIDDLEWARE_SECURITY__ENABLD", "OR_MIDDLEWARE_SECURITY__ENABLED"),
    ("or_middleware_otlp__endponit", "OR_MIDDLEWARE_OTLP__ENDPOINT"),
])
def test_a_misspelled_variable_is_refused_with_the_closest_name(monkeypatch, name, suggestion):
    monkeypatch.setenv(name, "x")
    with pytest.raises(ConfigError) as raised:
        Settings()
    assert f"{name} names no setting; did you mean {suggestion}?" in str(raised.value)
    assert "'x'" not in str(raised.value)  # names only: a value may be a secret


@pytest.mark.parametrize("name", [
    "OR_MIDDLEWARE_LANGFUSE__PUBLIC_KEY",  # a destination that is not enabled: one env file, several
    "OR_MIDDLEWARE_OTLP_BACKUP__ENDPOINT",  # labelled
    "OR_MIDDLEWARE_SECURITY__BURST_REQUESTS",
    "or_middleware_service_name",  # names are case-insensitive, as pydantic-settings reads them
])
def test_every_real_setting_name_is_accepted(monkeypatch, name):
    monkeypatch.setenv(name, "1")
    Settings()


def test_valid_names_come_from_the_settings_classes(monkeypatch):
    """A preset registered later (another module's) is known without a list to update."""
    from or_middleware.config import PRESETS, RemoteDestination, register_preset

    class WebhookLike(RemoteDestination):
        kind = "hooklike"
        url: str | None = None

    register_preset(WebhookLike)
    try:
        monkeypatch.setenv("OR_MIDDLEWARE_HOOKLIKE_TEAM__URL", "http://x")
        Settings()
        monkeypatch.setenv("OR_MIDDLEWARE_HOOKLIKE__ULR", "http://x")
        with pytest.raises(ConfigError, match="did you mean OR_MIDDLEWARE_HOOKLIKE__URL"):
            Settings()
    finally:
        PRESETS.pop("hooklike")


def test_the_check_command_reports_a_misspelled_variable(tmp_path):
    env = _env(tmp_path, {"OR_MIDDLEWARE_OTLP__ENDPONT": "http://x"})
    result = subprocess.run([sys.executable, "-m", "or_middleware", "check", "--dry-run"], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "did you mean OR_MIDDLEWARE_OTLP__ENDPOINT" in result.stdout + result.stderr
