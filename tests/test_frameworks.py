"""Every framework under a real server on loopback, through the runnable apps in examples/:
an async handler, a sync handler and a background task that calls the LLM after the response
is sent. Each LLM call is one GenAI span whose parent is its own request's server span (same
trace) and which carries that request's user and session."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

import or_middleware
from tests.conftest import Upstream, make_settings, otlp
from tests.support.otlp_receiver import OTLPReceiver, ReceivedSpan
from tests.support.real_servers import free_port, serve_command, serve_hypercorn, venv_command
from tests.support.servers import serve_asgi, serve_wsgi

IDENTITY = {"x-user-id": "alice", "x-session-id": "sess-9"}
ROUTES = {"/ask": 200, "/ask-sync": 200, "/ask-later": 202}

Server = Callable[[Any], contextlib.AbstractContextManager[str]]


def request_path(span: ReceivedSpan) -> str:
    a = span.attributes
    return str(a.get("url.path") or a.get("http.target") or "").split("?")[0]


def exercise(url: str, upstream: Upstream, receiver: OTLPReceiver) -> None:
    """Call every route once; check that each LLM call is traced under its own request."""
    with httpx.Client(base_url=url, headers=IDENTITY, timeout=30) as client:
        for route, status in ROUTES.items():
            question = f"question for {route}"
            # the body for handlers that read JSON, the query for sync handlers that cannot await it
            answer = client.post(route, params={"question": question}, json={"question": question})
            assert answer.status_code == status, answer.text
    genai = {s.span_id: s for s in receiver.wait_for_spans(lambda s: s.scope == "or_middleware", count=len(ROUTES))}
    assert or_middleware.force_flush()
    servers = {s.span_id: s for s in receiver.wait_for_spans(lambda s: s.kind == "SERVER", count=len(ROUTES))}
    assert len(genai) == len(ROUTES), "one GenAI span per LLM call, no doubles"
    calls = [r for r in upstream.received if r.json and "trace" in r.json]
    assert len(calls) == len(ROUTES)
    routes_seen = set()
    for call in calls:
        span = genai[call.json["trace"]["parent_span_id"]]  # the linkage names our span
        server = servers[span.parent_span_id]
        assert span.trace_id == server.trace_id == call.json["trace"]["trace_id"]
        route = request_path(server)
        assert call.json["messages"][0]["content"].endswith(f"question for {route}")
        assert span.attributes["user.id"] == "alice"
        assert span.attributes["session.id"] == "sess-9"
        assert call.json["user"] == "alice" and call.json["session_id"] == "sess-9"
        routes_seen.add(route)
    assert routes_seen == set(ROUTES)


def asgi_servers() -> list[Any]:
    return [pytest.param(serve_asgi, id="uvicorn"), pytest.param(serve_hypercorn, id="hypercorn")]


@pytest.mark.parametrize("serve", asgi_servers())
def test_fastapi(upstream, receiver, serve: Server):
    from examples.fastapi_app import create_app

    app = create_app(upstream.openrouter, make_settings(upstream, otlp(receiver)))
    with serve(app) as url:
        exercise(url, upstream, receiver)


def test_starlette_under_uvicorn(upstream, receiver):
    from examples.starlette_app import create_app

    with serve_asgi(create_app(upstream.openrouter, make_settings(upstream, otlp(receiver)))) as url:
        exercise(url, upstream, receiver)


def test_litestar_under_uvicorn(upstream, receiver):
    pytest.importorskip("litestar")
    from examples.litestar_app import create_app

    with serve_asgi(create_app(upstream.openrouter, make_settings(upstream, otlp(receiver)))) as url:
        exercise(url, upstream, receiver)


def test_quart_under_hypercorn(upstream, receiver):
    pytest.importorskip("quart")
    from examples.quart_app import create_app

    with serve_hypercorn(create_app(upstream.openrouter, make_settings(upstream, otlp(receiver)))) as url:
        exercise(url, upstream, receiver)


def test_flask_under_waitress(upstream, receiver):
    from examples.flask_app import create_app

    with serve_wsgi(create_app(upstream.openrouter, make_settings(upstream, otlp(receiver)))) as url:
        exercise(url, upstream, receiver)


@contextlib.contextmanager
def django_env(monkeypatch: pytest.MonkeyPatch, upstream: Upstream) -> Iterator[Any]:
    pytest.importorskip("django")
    monkeypatch.setenv("LLM_BASE_URL", upstream.openrouter)  # the example's views read it per call
    import examples.django_app as django_app

    yield django_app


def test_django_wsgi_under_waitress(upstream, receiver, monkeypatch):
    with django_env(monkeypatch, upstream) as django_app:
        app = django_app.create_wsgi_app(make_settings(upstream, otlp(receiver)))
        with serve_wsgi(app) as url:
            exercise(url, upstream, receiver)


def test_django_asgi_under_uvicorn(upstream, receiver, monkeypatch):
    with django_env(monkeypatch, upstream) as django_app:
        app = django_app.create_asgi_app(make_settings(upstream, otlp(receiver)))
        with serve_asgi(app, lifespan="off") as url:  # Django's ASGI handler does not speak lifespan
            exercise(url, upstream, receiver)


def test_flask_under_gunicorn_configured_by_env_only(upstream, receiver):
    """``gunicorn examples.flask_app:app`` exactly as the example's docstring says, two sync workers."""
    pytest.importorskip("gunicorn")
    port = free_port()
    env = {
        "LLM_BASE_URL": upstream.openrouter,
        "OR_MIDDLEWARE_DESTINATIONS": "otlp",
        "OR_MIDDLEWARE_OTLP__ENDPOINT": receiver.traces_url,
        "OR_MIDDLEWARE_OTLP__SCHEDULE_DELAY_MS": "50",
        "OR_MIDDLEWARE_LLM_HOSTS": f"openrouter={upstream.openrouter}",
    }
    argv = [venv_command("gunicorn"), "examples.flask_app:app", "--workers", "2", "--bind", f"127.0.0.1:{port}",
            "--graceful-timeout", "2"]
    with serve_command(argv, port, env) as url:
        exercise(url, upstream, receiver)
