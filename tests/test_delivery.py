"""Delivery: retries with backoff and Retry-After, the on-disk spool across an outage (and across a
restart of the app), drops counted when a bound is reached. Real receivers on loopback that
answer 429/503/401, stall, or are stopped (connection refused) and started again on the same port."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import httpx
import pytest

import or_middleware
from or_middleware import LLMTracingMiddleware, Settings
from or_middleware.config import OtlpDestination
from or_middleware.demo.serving import serve_asgi
from tests.apps import chat_body, fastapi_app
from tests.support.capture_receiver import RestartableOTLPReceiver
from tests.support.otlp_receiver import OTLPGrpcReceiver


def genai(span) -> bool:
    return span.scope == "or_middleware"


def make_app(upstream, destination: OtlpDestination):
    app = fastapi_app(upstream.openrouter)
    settings = Settings(service_name="shop", destinations=[destination], llm_hosts=f"openrouter={upstream.openrouter}")
    app.add_middleware(LLMTracingMiddleware, settings=settings)
    return app


def ask(url: str, n: int, *, flush_each: bool = True) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        for i in range(n):
            client.post("/ask", json=chat_body(f"question {i}"), headers={"x-user-id": f"user-{i}"}).raise_for_status()
            if flush_each:
                or_middleware.force_flush()


def destination(endpoint: str, spool: Path, **options) -> OtlpDestination:
    # metrics=False: these receivers count requests, and the destination's metrics exports would add some
    defaults = {"spans": "genai", "schedule_delay_ms": 20, "spool_dir": str(spool), "max_backoff_s": 0.3,
                "metrics": False}
    return OtlpDestination(endpoint=endpoint, **{**defaults, **options})


def spool_files(spool: Path) -> list[Path]:
    return sorted(spool.rglob("*.batch"))


@pytest.mark.parametrize(("status", "retry_after"), [(429, 1), (503, None)])
def test_a_refused_batch_is_retried_with_backoff_honouring_retry_after(upstream, tmp_path, status, retry_after):
    with RestartableOTLPReceiver() as receiver:
        app = make_app(upstream, destination(receiver.traces_url, tmp_path, max_backoff_s=5))
        receiver.respond(status=status, retry_after=retry_after, times=2)
        with serve_asgi(app) as url:
            started = time.monotonic()
            ask(url, 1)
            took = time.monotonic() - started
        [span] = receiver.wait_for_spans(genai)
    assert len(receiver.requests) == 3  # refused, refused, accepted
    stats = or_middleware.stats()["otlp"]
    assert stats["retried"] == 2 and stats["exported"] == 1
    assert stats["spooled"] == 0 and stats["dropped"] == 0
    if retry_after:
        assert took >= 2 * retry_after * 0.95  # waited what the destination asked, twice
    assert span.attributes["user.id"] == "user-0"


def test_grpc_retry_honours_the_retry_info_of_the_server(upstream, tmp_path):
    with OTLPGrpcReceiver() as receiver:
        receiver.respond(status=429, retry_after=1, times=1)  # RESOURCE_EXHAUSTED + RetryInfo(1s)
        app = make_app(upstream, destination(receiver.url, tmp_path, protocol="grpc", max_backoff_s=5))
        with serve_asgi(app) as url:
            started = time.monotonic()
            ask(url, 1)
            took = time.monotonic() - started
        receiver.wait_for_spans(genai)
    assert took >= 0.95
    assert or_middleware.stats()["otlp"]["retried"] == 1


def test_a_rejected_batch_is_counted_failed_and_not_spooled(upstream, tmp_path, caplog):
    with RestartableOTLPReceiver() as receiver:
        receiver.respond(status=401)
        app = make_app(upstream, destination(receiver.traces_url, tmp_path))
        with serve_asgi(app) as url:
            ask(url, 2)
    assert len(receiver.requests) == 2  # no retry: resending cannot fix credentials
    stats = or_middleware.stats()["otlp"]
    assert stats["failed"] == 2 and stats["spooled"] == 0 and stats["exported"] == 0
    assert not spool_files(tmp_path)
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1 and "auth rejected (HTTP 401" in refusals[0].getMessage()  # logged once a minute


def test_the_spool_keeps_every_span_through_an_outage_and_resends_oldest_first(upstream, tmp_path):
    receiver = RestartableOTLPReceiver()
    receiver.start()
    app = make_app(upstream, destination(receiver.traces_url, tmp_path))
    with serve_asgi(app) as url:
        receiver.stop()  # connection refused from now on
        ask(url, 6)
        stats = or_middleware.stats()["otlp"]
        assert stats["spooled"] == 6 and stats["exported"] == 0 and stats["dropped"] == 0
        assert stats["spool_pending"] == 6
        assert len(spool_files(tmp_path)) >= 1
        time.sleep(0.5)  # down for a while
        receiver.start()
        spans = receiver.wait_for_spans(genai, count=6, timeout=15)
    receiver.close()
    assert [s.attributes["user.id"] for s in spans] == [f"user-{i}" for i in range(6)]  # nothing lost, in order
    stats = or_middleware.stats()["otlp"]
    assert stats["exported"] == 6 and stats["dropped"] == 0 and stats["spool_pending"] == 0
    assert not spool_files(tmp_path)


def test_a_spool_left_by_a_stopped_app_is_resent_by_the_next_one(upstream, tmp_path):
    receiver = RestartableOTLPReceiver()
    receiver.start()
    receiver.stop()
    app = make_app(upstream, destination(receiver.traces_url, tmp_path, max_retries=0))
    with serve_asgi(app) as url:
        ask(url, 3)
    or_middleware.shutdown_all()  # the app stops while the destination is still down
    assert len(spool_files(tmp_path)) == 3
    receiver.start()
    settings = Settings(service_name="shop", destinations=[destination(receiver.traces_url, tmp_path)])
    LLMTracingMiddleware(fastapi_app(upstream.openrouter), settings=settings)  # the next start of the app
    spans = receiver.wait_for_spans(genai, count=3, timeout=15)
    receiver.close()
    assert sorted(s.attributes["user.id"] for s in spans) == ["user-0", "user-1", "user-2"]
    assert not spool_files(tmp_path)
    assert or_middleware.stats()["otlp"]["exported"] == 3


def test_beyond_the_spool_bound_spans_are_dropped_and_counted(upstream, tmp_path, caplog):
    receiver = RestartableOTLPReceiver()
    receiver.start()
    receiver.stop()
    tiny = 3 / 1024  # 3 KB: room for a few one-span batches
    app = make_app(upstream, destination(receiver.traces_url, tmp_path, max_retries=0, spool_max_mb=tiny))
    with serve_asgi(app) as url, caplog.at_level(logging.WARNING):
        ask(url, 8)
        stats = or_middleware.stats()["otlp"]
        assert stats["dropped"] >= 1 and stats["spooled"] >= 1
        assert stats["spooled"] + stats["dropped"] == 8
        kept = stats["spooled"]
        receiver.start()
        spans = receiver.wait_for_spans(genai, count=kept, timeout=15)
        time.sleep(0.3)
    receiver.close()
    assert len(spans) == kept == len(receiver.spans)
    assert sum(f.stat().st_size for f in spool_files(tmp_path)) == 0
    drops = [r for r in caplog.records if "dropping spans" in r.getMessage()]
    assert len(drops) == 1 and "spool" in drops[0].getMessage()  # rate-limited: one warning for many drops


def test_a_full_queue_drops_and_counts_instead_of_blocking_the_app(upstream, tmp_path):
    with RestartableOTLPReceiver() as receiver:
        receiver.respond(delay=3, times=1)  # the exporter thread is stuck in its first send
        app = make_app(upstream, destination(receiver.traces_url, tmp_path, max_queue_size=1))
        with serve_asgi(app) as url:
            ask(url, 1, flush_each=False)
            time.sleep(0.2)
            ask(url, 5, flush_each=False)  # had the app waited for the destination, nothing would drop
            or_middleware.force_flush()
    stats = or_middleware.stats()["otlp"]
    assert stats["dropped"] >= 1
    assert stats["queued"] + stats["dropped"] == 6
    assert stats["exported"] == stats["queued"]
