"""Lifecycle: instrumenting is reversible to the function, long runs leak nothing, shutdown flushes.

- uninstrument / instrument / uninstrument ... leaves every patched function of httpx, httpx2
  and requests identical (``is``) to the original, also with another httpx instrumentation
  installed in between (undone in reverse order, as the README says);
- 10,000 requests (half streamed, 50 users, a session each) through the ASGI middleware leave
  the process's RSS within a generous bound after warm-up and start no thread;
- SIGTERM under uvicorn (lifespan) and under gunicorn (WSGI, sync workers) exports every finished
  span before the process exits, within a bounded time, even with a schedule delay of a minute;
  with a blackholed destination the process still exits in bounded time.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import os
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

import or_middleware
from or_middleware import LLMTracingMiddleware, Settings
from or_middleware.config import OtlpDestination
from tests.apps import chat_body
from tests.reliability.inprocess_app import build, run_direct
from tests.support.memory import rss_bytes, thread_names
from tests.support.raw_http import RawHTTPServer, send_response
from tests.support.real_servers import free_port, serve_command, venv_command

SEAMS = [
    ("httpx", "HTTPTransport", "handle_request"),
    ("httpx", "AsyncHTTPTransport", "handle_async_request"),
    ("httpx", "Client", "_send_single_request"),
    ("httpx", "AsyncClient", "_send_single_request"),
    ("httpx2", "HTTPTransport", "handle_request"),
    ("httpx2", "AsyncHTTPTransport", "handle_async_request"),
    ("httpx2", "Client", "_send_single_request"),
    ("httpx2", "AsyncClient", "_send_single_request"),
    ("requests.adapters", "HTTPAdapter", "send"),
]


def seams() -> dict[tuple[str, str, str], tuple[Any, bool]]:
    """Each patched function as it is now, and whether the class itself holds it (not a base)."""
    found = {}
    for module_name, cls_name, attribute in SEAMS:
        try:
            cls = getattr(importlib.import_module(module_name), cls_name)
        except ImportError:
            continue
        found[(module_name, cls_name, attribute)] = (getattr(cls, attribute), attribute in cls.__dict__)
    return found


def same(a: dict[Any, tuple[Any, bool]], b: dict[Any, tuple[Any, bool]]) -> bool:
    return a.keys() == b.keys() and all(a[k][0] is b[k][0] and a[k][1] == b[k][1] for k in a)


@pytest.fixture
def pristine() -> Any:
    """The library functions with our hook off; the hook is back on afterwards (other tests need it)."""
    or_middleware.uninstrument()
    try:
        original = seams()
        assert original, "neither httpx nor requests is importable?"
        for (module_name, _, _), (function, _) in original.items():
            assert getattr(function, "__or_middleware_original__", None) is None
            assert function.__module__.startswith(module_name.split(".")[0]), function
        yield original
    finally:
        or_middleware.instrument()


def test_uninstrument_and_reinstrument_leave_httpx_exactly_as_it_was(pristine):
    for _ in range(3):
        or_middleware.instrument()
        patched = seams()
        assert all(patched[k][0] is not pristine[k][0] for k in pristine)  # every seam is ours
        or_middleware.instrument()
        LLMTracingMiddleware(Starlette(), settings=Settings(destinations=[]))  # building one installs, once
        assert same(seams(), patched)  # idempotent: nothing wrapped twice
        or_middleware.uninstrument()
        assert same(seams(), pristine)  # the very same functions, in the same classes
    # After an explicit uninstrument, a middleware built later does not put the hook back.
    LLMTracingMiddleware(Starlette(), settings=Settings(destinations=[]))
    assert same(seams(), pristine)


def test_with_the_opentelemetry_httpx_instrumentation_in_between(pristine):
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    instrumentor = HTTPXClientInstrumentor()
    or_middleware.instrument()
    ours = seams()
    instrumentor.instrument()
    try:
        assert not same(seams(), ours)  # theirs wraps on top of ours
    finally:
        instrumentor.uninstrument()  # the reverse order of instrumenting
    assert same(seams(), ours)
    or_middleware.uninstrument()
    assert same(seams(), pristine)


# --- leaks ----------------------------------------------------------------------------------------

LEAK_REQUESTS = int(os.environ.get("OR_RELIABILITY_LEAK_REQUESTS", "10000"))


def _ours(names: list[str]) -> list[str]:
    """Threads that are not the test servers' per-connection ones."""
    return [n for n in names if n != "raw-http-conn"]


@pytest.mark.heavy
def test_10000_requests_leave_memory_and_threads_flat(tmp_path):
    """In-process requests (no sockets on the request path) so 10,000 take seconds; the spans
    still go through analysis, the pipeline and a real OTLP/HTTP export to a loopback sink."""
    with RawHTTPServer(keep_requests=False) as sink:
        path = sink.route(lambda request, conn: send_response(
            conn, 200, {"content-type": "application/x-protobuf"}, [b""], chunked=False))
        destination = OtlpDestination(endpoint=f"{sink.url}{path}/v1/traces", schedule_delay_ms=100,
                                      spans="genai", privacy_mode=False, metrics=False,
                                      spool_dir=str(tmp_path / "spool"))
        app = build(Settings(destinations=[destination]))
        asyncio.run(run_direct(app, 0, 500))  # warm-up: caches, pools, price table, lazily built things
        assert or_middleware.force_flush(10_000)
        gc.collect()
        threads, rss = _ours(thread_names()), rss_bytes()
        started = time.perf_counter()
        asyncio.run(run_direct(app, 1000, LEAK_REQUESTS))
        elapsed = time.perf_counter() - started
        assert or_middleware.force_flush(10_000)
        gc.collect()
        growth = rss_bytes() - rss
        stats = or_middleware.stats()
        assert _ours(thread_names()) == threads  # no thread started (or left) per request
    print(f"{LEAK_REQUESTS} requests in {elapsed:.1f} s; RSS growth {growth / 2**20:.1f} MB; {stats}")
    assert growth < 30 * 2**20, f"RSS grew {growth / 2**20:.1f} MB over {LEAK_REQUESTS} requests"
    counts = next(iter(stats.values()))
    assert counts["exported"] + counts["dropped"] + counts["filtered"] >= LEAK_REQUESTS  # every span accounted for
    assert counts["failed"] == 0


# --- graceful shutdown ------------------------------------------------------------------------------

SHUTDOWN_APP = """
import os

import httpx
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from or_middleware import LLMTracingMiddleware, LLMTracingWSGIMiddleware

BASE = os.environ["LLM_BASE_URL"]


async def ask(request):
    async with httpx.AsyncClient() as client:
        answer = await client.post(BASE + "/chat/completions", json=await request.json())
    return JSONResponse({"id": answer.json()["id"]})


app = LLMTracingMiddleware(Starlette(routes=[Route("/ask", ask, methods=["POST"])]))


def _wsgi_ask(environ, start_response):
    if environ["PATH_INFO"] != "/ask":  # the readiness probe
        start_response("404 Not Found", [("content-type", "text/plain")])
        return [b"not here"]
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    answer = httpx.post(BASE + "/chat/completions", content=body, headers={"content-type": "application/json"})
    start_response("200 OK", [("content-type", "application/json")])
    return [answer.content]


wsgi_app = LLMTracingWSGIMiddleware(_wsgi_ask)
"""

SERVERS: dict[str, Callable[[int], list[str]]] = {
    "uvicorn": lambda port: [venv_command("uvicorn"), "shutdown_app:app", "--port", str(port),
                             "--lifespan", "on", "--log-level", "warning"],
    "gunicorn": lambda port: [venv_command("gunicorn"), "--workers", "1", "--bind", f"127.0.0.1:{port}",
                              "--graceful-timeout", "5", "shutdown_app:wsgi_app"],
}


def _env(tmp_path: Any, upstream: Any, receiver: Any, **extra: str) -> dict[str, str]:
    return {
        "LLM_BASE_URL": upstream.openrouter,
        "OR_MIDDLEWARE_DESTINATIONS": "otlp",
        "OR_MIDDLEWARE_OTLP__ENDPOINT": receiver.traces_url,
        "OR_MIDDLEWARE_OTLP__SCHEDULE_DELAY_MS": "60000",  # nothing leaves unless shutdown flushes
        "OR_MIDDLEWARE_OTLP__TIMEOUT": "1",
        "OR_MIDDLEWARE_SPOOL_DIR": str(tmp_path / "spool"),
        "OR_MIDDLEWARE_LLM_HOSTS": f"openrouter={upstream.openrouter}",
        **extra,
    }


def _serve(server: str, tmp_path: Any, env: dict[str, str]) -> Any:
    pytest.importorskip(server)
    (tmp_path / "shutdown_app.py").write_text(SHUTDOWN_APP)
    port = free_port()
    argv = SERVERS[server](port)
    argv[1:1] = ["--app-dir", str(tmp_path)] if server == "uvicorn" else ["--chdir", str(tmp_path)]
    return serve_command(argv, port, env)


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_sigterm_flushes_every_finished_span(server, upstream, receiver, tmp_path):
    count = 6
    with _serve(server, tmp_path, _env(tmp_path, upstream, receiver)) as url, httpx.Client(base_url=url) as client:
        ids = [client.post("/ask", json=chat_body(f"bye {i}")).json()["id"] for i in range(count)]
        time.sleep(0.3)
        assert not [s for s in receiver.spans if s.scope == "or_middleware"]  # held back by the schedule
        stopping = time.monotonic()
    stopped_in = time.monotonic() - stopping  # SIGTERM to exit (serve_command waits for the process)
    spans = receiver.wait_for_spans(lambda s: s.scope == "or_middleware", count=count, timeout=5)
    assert sorted(s.attributes["gen_ai.response.id"] for s in spans) == sorted(ids)
    assert stopped_in < 10, f"{server} took {stopped_in:.1f} s to stop"


def test_sigterm_with_a_blackholed_destination_still_stops_in_bounded_time(upstream, receiver, tmp_path):
    """uvicorn: the lifespan flush must give up in time (gunicorn kills a worker after its own
    graceful timeout, which would hide a hang of ours)."""
    server = "uvicorn"
    receiver.respond(blackhole=True)
    with _serve(server, tmp_path, _env(tmp_path, upstream, receiver)) as url, httpx.Client(base_url=url) as client:
        for i in range(3):
            assert client.post("/ask", json=chat_body(f"into the void {i}")).status_code == 200
        stopping = time.monotonic()
    stopped_in = time.monotonic() - stopping
    assert stopped_in < 15, f"{server} took {stopped_in:.1f} s to stop with a blackholed destination"
