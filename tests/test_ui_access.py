"""The Activity Explorer is safe by default: loopback unless a token is set, the token on every request,
read-only, GET only, loopback Host names only, hostile parameters answered 400 (never run as SQL).
Real uvicorn servers, real HTTP over loopback."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from or_middleware.demo.serving import serve_asgi
from or_middleware.ui import explorer_app
from or_middleware.ui.app import standalone_app
from tests.support.generations import genai_span, rows
from tests.support.ui_store import XSS

TOKEN = "correct-horse-battery-staple-42"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    from or_middleware.export.store import LocalStoreExporter

    db = str(tmp_path_factory.mktemp("access") / "traces.db")
    exporter = LocalStoreExporter(db)
    exporter.export([genai_span(start_s=time.time() - 60 + n, request_model=f"m-{n % 2}", user=f"u{n}",
                                input_tokens=10, output_tokens=5, cost=0.001, trace_metadata={"team": "a'b"})
                     for n in range(5)])
    exporter.shutdown()
    return db


@pytest.fixture(scope="module")
def open_url(store) -> Iterator[str]:
    with serve_asgi(standalone_app(store, token=None, host="127.0.0.1")) as url:
        yield url


@pytest.fixture(scope="module")
def token_url(store) -> Iterator[str]:
    with serve_asgi(standalone_app(store, token=TOKEN, host="0.0.0.0")) as url:
        yield url


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ui(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "or_middleware", "ui", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def test_a_non_loopback_bind_without_a_token_is_refused(store):
    for host in ("0.0.0.0", "::", "192.0.2.10", "example.com"):
        process = _ui("--db", store, "--host", host, "--port", str(_free_port()))
        _out, err = process.communicate(timeout=60)
        assert process.returncode == 2, (host, err)
        assert "needs a token" in err and "OR_MIDDLEWARE_UI_TOKEN" in err and len(err.strip().splitlines()) == 1
    short = _ui("--db", store, "--host", "0.0.0.0", "--token", "short")
    assert short.wait(60) == 2 and "16 characters" in short.stderr.read()
    missing = _ui("--db", store + ".nope")
    assert missing.wait(60) == 2 and "no store at" in missing.stderr.read()
    assert not os.path.exists(store + ".nope")  # never created


def test_the_cli_serves_with_the_token_from_the_environment_and_never_prints_it(store):
    port = _free_port()
    process = _ui("--db", store, "--host", "0.0.0.0", "--port", str(port), env={"OR_MIDDLEWARE_UI_TOKEN": TOKEN})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
                time.sleep(0.2)
        assert answer.status_code == 401
        assert httpx.get(f"http://127.0.0.1:{port}/", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
    finally:
        process.terminate()
        out, err = process.communicate(timeout=30)
    assert "?token=<your token>" in err and TOKEN not in out + err


def test_wrong_or_missing_token_is_401_on_every_route(token_url):
    for path in ("/", "/generations", "/generations/1", "/static/uPlot.iife.min.js", "/api/live", "/nope",
                 "/static/../app.py"):
        for headers in ({}, {"authorization": "Bearer wrong-token-wrong-token"}, {"authorization": TOKEN},
                        {"cookie": "or_middleware_ui=" + TOKEN}, {"authorization": f"Basic {TOKEN}"}):
            answer = httpx.get(token_url + path, headers=headers)
            assert answer.status_code == 401, (path, headers, answer.status_code)
            assert "uPlot" not in answer.text and "<table" not in answer.text
        assert httpx.get(token_url + path, params={"token": TOKEN[:-1]}).status_code == 401
        assert httpx.get(token_url + path, params={"token": TOKEN + "x"}).status_code == 401


def test_the_token_once_in_the_address_sets_a_cookie_and_leaves_the_address(token_url):
    with httpx.Client(base_url=token_url) as client:
        answer = client.get("/generations", params={"token": TOKEN, "user": "u1"})
        assert answer.status_code == 303 and answer.headers["location"] == "/generations?user=u1"
        cookie = answer.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and TOKEN.lower() not in cookie
        page = client.get("/generations", params={"user": "u1"})  # the cookie, not the token
        assert page.status_code == 200 and "u1" in page.text
        assert client.get("/static/explorer.js").status_code == 200
    assert httpx.get(token_url + "/", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
    # a path that starts with // would make the redirect leave the site
    answer = httpx.get(token_url + "//evil.example/x", params={"token": TOKEN})
    assert answer.status_code == 303 and answer.headers["location"] == "/evil.example/x"


def test_read_only_get_only_and_secure_headers(open_url, store):
    before = rows(store)
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert httpx.request(method, open_url + "/generations", content=b"x").status_code == 405
    answer = httpx.get(open_url + "/")
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe" not in policy
    assert answer.headers["x-frame-options"] == "DENY" and answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert rows(store) == before
    # the UI's connection cannot write even if asked to: the file is opened read-only
    from or_middleware.ui.source import ReadOnlyStore

    with ReadOnlyStore(store).connect() as reader, pytest.raises(sqlite3.OperationalError):
        reader.all("DELETE FROM generations")


def test_a_foreign_host_name_is_refused_on_loopback(open_url):
    """DNS rebinding: a page of evil.example whose name now points at 127.0.0.1 is not answered."""
    for host in ("evil.example", "evil.example:8765", "127.0.0.1.evil.example", "localhost.evil.example"):
        assert httpx.get(open_url + "/", headers={"host": host}).status_code == 421, host
    port = open_url.rsplit(":", 1)[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost"):
        assert httpx.get(open_url + "/", headers={"host": host}).status_code == 200, host


def test_hostile_parameters_are_400_or_inert(open_url, store):
    before = rows(store)
    bad = [
        ("/generations", {"sort": "cost; DROP TABLE generations"}),
        ("/generations", {"sort": "(SELECT 1)"}),
        ("/generations", {"order": "desc, id"}),
        ("/generations", {"page": "1 OR 1=1"}),
        ("/generations", {"page": "²"}),
        ("/generations", {"page": "9" * 5000}),
        ("/generations", {"size": "100000000"}),
        ("/generations", {"min_cost": "nan"}),
        ("/generations", {"min_cost": "-1"}),
        ("/generations", {"min_latency": "1e999"}),
        ("/generations", {"status": "ok' OR '1'='1"}),
        ("/generations", {"since": "1 day'); --"}),
        ("/generations", {"since": "99999999999999d"}),
        ("/generations", {"until": "9" * 400 + "w"}),
        ("/generations", {"meta": "no-equals-sign"}),
        ("/generations", {"user": "x" * 5000}),
        ("/", {"by": "metadata.x') FROM generations; --"}),
        ("/", {"by": "metadata.a\"b"}),
        ("/", {"by": "colour"}),
        ("/api/live", {"after": "-1"}),
        ("/trace", {}),
    ]
    for path, params in bad:
        answer = httpx.get(open_url + path, params=params)
        assert answer.status_code == 400, (path, params, answer.status_code)
        assert "<script" not in answer.text.split("</header>")[-1].split("</main>")[0].lower()
    inert = [
        ("/generations", {"user": "u1' OR '1'='1"}),
        ("/generations", {"model": "m-0\" OR 1=1 --"}),
        ("/generations", {"meta": "team'--=a'b"}),
        ("/generations", {"meta": "$.team=a'b"}),
        ("/trace", {"id": "' OR 1=1 --"}),
        ("/session", {"id": XSS}),
        ("/user", {"id": XSS}),
    ]
    for path, params in inert:
        answer = httpx.get(open_url + path, params=params)
        assert answer.status_code in (200, 404), (path, params)
        assert "<td class=\"nowrap\"><a href=\"/generations/" not in answer.text  # nothing matched
        assert XSS not in answer.text  # a reflected value is escaped
    matched = httpx.get(open_url + "/generations", params={"meta": "team=a'b"})
    assert matched.text.count('<tr data-id="') == 5  # the quote is data, matched exactly
    assert httpx.get(open_url + "/generations/" + "9" * 30).status_code == 404
    assert rows(store) == before


def test_static_files_cannot_leave_their_directory(open_url):
    for path in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fapp.py", "/static/%2e%2e%2f%2e%2e/cli.py",
                 "/static//etc/passwd", "/static/....//app.py"):
        answer = httpx.get(open_url + path)
        assert answer.status_code == 404, (path, answer.status_code)
        assert "explorer_app" not in answer.text
    assert httpx.get(open_url + "/static/uPlot.LICENSE.txt").text.startswith("The MIT License")


def test_a_mounted_explorer_requires_the_apps_own_auth(store):
    from starlette.applications import Starlette
    from starlette.routing import Mount

    with pytest.raises(TypeError):
        explorer_app(store)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        explorer_app(store, auth=None)  # type: ignore[arg-type]

    async def staff_only(request) -> bool:
        return request.headers.get("x-staff") == "yes"

    def broken(request) -> bool:
        raise RuntimeError("auth backend down")

    host = Starlette(routes=[Mount("/llm", explorer_app(store, auth=staff_only)),
                             Mount("/broken", explorer_app(store, auth=broken)),
                             Mount("/truthy", explorer_app(store, auth=lambda r: "yes"))])
    with serve_asgi(host) as url, httpx.Client(base_url=url) as client:
        assert client.get("/llm/").status_code == 401
        page = client.get("/llm/generations", headers={"x-staff": "yes"})
        assert page.status_code == 200 and 'href="/llm/generations/' in page.text
        assert 'src="/llm/static/uPlot.iife.min.js"' in page.text
        assert client.get("/llm/static/explorer.js", headers={"x-staff": "yes"}).status_code == 200
        assert client.get("/broken/").status_code == 401  # a failing check refuses
        assert client.get("/truthy/").status_code == 401  # only True lets a request through
        assert client.get("/llm/", headers={"x-staff": "yes", "host": "anything.example"}).status_code == 200


def test_the_token_variable_does_not_stop_an_app_sharing_the_environment(monkeypatch):
    """OR_MIDDLEWARE_UI_TOKEN is the ui command's, not a middleware setting: the middleware's
    unknown-variable check lets it be (a misspelled one is still refused)."""
    from or_middleware import Settings
    from or_middleware.config import ConfigError

    monkeypatch.setenv("OR_MIDDLEWARE_UI_TOKEN", TOKEN)
    Settings()
    monkeypatch.setenv("OR_MIDDLEWARE_UI_TOKN", TOKEN)
    with pytest.raises(ConfigError, match="OR_MIDDLEWARE_UI_TOKN"):
        Settings()
