"""Destinations that misbehave on purpose (issue 11 item 8): a huge answer, an answer trickled one
byte at a time, a peer that accepts and never answers. Whatever they do, each attempt ends by its
``TIMEOUT``, at most a small part of the answer is read, and the batch is retried, spooled and
counted. The app runs under uvicorn, the destinations are raw sockets on loopback.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

import or_middleware
from or_middleware.config import OtlpDestination, PostHogDestination
from or_middleware.demo.serving import serve_asgi
from tests.support.memory import peak_growth
from tests.support.raw_http import RawHTTPServer
from tests.support.silent import silent_ports
from tests.test_delivery import ask, make_app

HUGE = 400 * 1024 * 1024


@pytest.fixture
def raw_server() -> Iterator[RawHTTPServer]:
    with RawHTTPServer() as server:
        yield server


def _destination(kind: str, base: str, spool, **options):
    common = {"spans": "genai", "schedule_delay_ms": 20, "spool_dir": str(spool), "max_backoff_s": 0.2,
              "timeout": 1.0, **options}
    if kind == "posthog":
        return PostHogDestination(host=base, api_key="phc_test", **common)
    return OtlpDestination(endpoint=base + "/v1/traces", protocol=kind, metrics=False, **common)


def _huge_answer(server: RawHTTPServer):
    def script(request, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 500 Oops\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n\r\n" % HUGE)
        chunk, sent = b"x" * 65536, 0
        while sent < HUGE and not server.released.is_set():
            conn.sendall(chunk)  # raises once the client has stopped reading and closed
            sent += len(chunk)
    return script


def _trickle(server: RawHTTPServer, where: str):
    def script(request, conn: socket.socket) -> None:
        if where == "body":
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 100000\r\n\r\n")
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
        while not server.released.wait(0.3):  # one byte at a time, forever: no read ever times out
            conn.sendall(b"a" if where == "body" else b"x-pad: 1\r\n"[:1])
    return script


@pytest.mark.parametrize("kind", ["http/protobuf", "http/json", "posthog"])
def test_a_huge_answer_is_not_read_into_memory(upstream, tmp_path, raw_server, kind):
    base = raw_server.url + raw_server.route(_huge_answer(raw_server))
    app = make_app(upstream, _destination(kind, base, tmp_path, max_retries=0))
    with serve_asgi(app) as url:
        def one_call() -> bool:
            ask(url, 1, flush_each=False)
            return or_middleware.force_flush(60_000)

        flushed, growth = peak_growth(one_call)
    assert flushed
    assert growth < 64 * 1024 * 1024, f"memory grew by {growth / 2**20:.0f} MiB"
    stats = or_middleware.stats()[kind.replace("http/protobuf", "otlp").replace("http/json", "otlp")]
    assert stats["spooled"] == 1 and stats["exported"] == 0  # 500: worth retrying later, kept


@pytest.mark.parametrize("where", ["head", "body"])
@pytest.mark.parametrize("kind", ["http/protobuf", "http/json", "posthog"])
def test_a_trickling_collector_cannot_hold_a_batch_beyond_its_timeout(upstream, tmp_path, raw_server, kind, where):
    base = raw_server.url + raw_server.route(_trickle(raw_server, where))
    app = make_app(upstream, _destination(kind, base, tmp_path, max_retries=1))
    with serve_asgi(app) as url:
        ask(url, 1, flush_each=False)
        assert or_middleware.force_flush(60_000)  # on 154468c: False, the send never ends
        name = "posthog" if kind == "posthog" else "otlp"
        stats = or_middleware.stats()[name]
        assert stats["retried"] >= 1 and stats["spooled"] == 1 and stats["exported"] == 0


def test_a_grpc_peer_that_never_answers_is_bounded_by_the_deadline(upstream, tmp_path):
    with silent_ports(1) as [port]:
        dest = OtlpDestination(endpoint=f"http://127.0.0.1:{port}", protocol="grpc", metrics=False, spans="genai",
                               schedule_delay_ms=20, spool_dir=str(tmp_path), timeout=1.0, max_retries=0)
        with serve_asgi(make_app(upstream, dest)) as url:
            ask(url, 1, flush_each=False)
            assert or_middleware.force_flush(60_000)
            assert or_middleware.stats()["otlp"]["spooled"] == 1
