"""Destination fault matrix: a destination that is down, blackholed, slow, answering 500 / 503 or
429 with Retry-After / 400, answering garbage, or closing mid-response — while the app serves
non-streaming, streaming and forwarded (gateway) requests.

For every fault: the app's answers are byte-identical to the bare app's, no exception reaches
it, and once the destination is back every finished span is delivered (retries, the spool),
except those the destination refused for good (400), which are counted.
Retries and the spool themselves are tested in test_delivery; this is the cross product.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import or_middleware
from or_middleware import LLMTracingMiddleware, Settings
from or_middleware.config import OtlpDestination
from or_middleware.demo.fake_upstream import create_fake_upstream
from or_middleware.demo.serving import serve_asgi
from tests.apps import chat_body, fastapi_app
from tests.support.faulty_otlp import FaultyOTLPReceiver

PER_KIND = 2
TRAFFIC = ("ask", "relay", "gateway")


def _normalise(data: bytes) -> bytes:
    """What differs between two runs of the fake: its clock and its id counter."""
    data = re.sub(rb'"created": ?\d+', b'"created":0', data)
    return re.sub(rb"gen-\d+-fake", b"ID", data)


def traffic(app_url: str, gateway_url: str) -> dict[str, list[bytes]]:
    """Non-streaming and streaming requests to the app, streaming ones through the gateway."""
    out: dict[str, list[bytes]] = {kind: [] for kind in TRAFFIC}
    with httpx.Client(timeout=30) as client:
        for i in range(PER_KIND):
            for kind in TRAFFIC:
                body = chat_body(f"{kind} {i}", stream=kind != "ask")
                url = f"{gateway_url}/v1/chat/completions" if kind == "gateway" else f"{app_url}/{kind}"
                with client.stream("POST", url, json=body, headers={"x-user-id": f"{kind}-{i}"}) as response:
                    out[kind].append(_normalise(f"{response.status_code}|".encode() + response.read()))
    return out


@pytest.fixture(scope="module")
def fake() -> Iterator[str]:
    with serve_asgi(create_fake_upstream()) as url:
        yield url


@pytest.fixture(scope="module")
def bare(fake: str) -> dict[str, list[bytes]]:
    import or_middleware as om
    from examples.proxy_app import create_app

    om.uninstrument()
    try:
        gateway = create_app(f"{fake}/api/v1", settings=Settings(destinations=[]))
        with serve_asgi(fastapi_app(f"{fake}/api/v1")) as url, serve_asgi(gateway) as gateway_url:
            answers = traffic(url, gateway_url)
    finally:
        om.instrument()
        om.shutdown_all()
    assert all(a.startswith(b"200|") for kind in answers.values() for a in kind)
    return answers


Fault = tuple[Callable[[FaultyOTLPReceiver], None], Callable[[FaultyOTLPReceiver], None]]
NOTHING: Callable[[FaultyOTLPReceiver], None] = lambda rx: None  # noqa: E731

# name -> (start the fault, end it); faults given with times=N end by themselves.
FAULTS: dict[str, Fault] = {
    "down": (lambda rx: rx.stop(), lambda rx: rx.start()),
    "blackholed": (lambda rx: rx.respond(blackhole=True, times=2), NOTHING),
    "slow": (lambda rx: rx.respond(delay=1.0, times=1), NOTHING),  # within the 2 s timeout
    # answers after our timeout, having taken the batch: the retry sends it again (at least once)
    "slower_than_the_timeout": (lambda rx: rx.respond(delay=2.5, times=1), NOTHING),
    "http_500": (lambda rx: rx.respond(status=500, times=2), NOTHING),
    "http_503_retry_after": (lambda rx: rx.respond(status=503, retry_after=1, times=2), NOTHING),
    "http_429_retry_after": (lambda rx: rx.respond(status=429, retry_after=1, times=2), NOTHING),
    "http_400": (lambda rx: rx.respond(status=400, times=1), NOTHING),
    "garbage": (lambda rx: rx.respond_raw("garbage", times=2), NOTHING),
    "closing_mid_response": (lambda rx: rx.respond_raw("close_mid", times=2), NOTHING),
}


def _destination(name: str, receiver: FaultyOTLPReceiver, spool: Path) -> OtlpDestination:
    return OtlpDestination(name=name, endpoint=receiver.traces_url, spans="genai", schedule_delay_ms=20,
                           timeout=2, max_backoff_s=0.3, spool_dir=str(spool), metrics=False)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_destination_fault(fault, fake, bare, tmp_path):
    from examples.proxy_app import create_app

    start, end = FAULTS[fault]
    receiver = FaultyOTLPReceiver()
    receiver.start()
    try:
        hosts = f"openrouter={fake}/api/v1"
        app = fastapi_app(f"{fake}/api/v1")
        app.add_middleware(LLMTracingMiddleware, settings=Settings(
            destinations=[_destination("otlp", receiver, tmp_path)], llm_hosts=hosts))
        gateway = create_app(f"{fake}/api/v1", settings=Settings(
            destinations=[_destination("otlp_gateway", receiver, tmp_path)], llm_hosts=hosts))
        with serve_asgi(app) as url, serve_asgi(gateway) as gateway_url:
            start(receiver)
            answers = traffic(url, gateway_url)  # while the destination misbehaves
            end(receiver)
            assert answers == bare  # byte-identical, no exception, every answer complete
            total = PER_KIND * len(TRAFFIC)
            if fault == "http_400":  # refused for good: not retried, not spooled; counted
                delivered = _settle(receiver, lambda stats: _sum(stats, "exported") + _sum(stats, "failed") >= total)
                stats = or_middleware.stats()
                assert _sum(stats, "failed") >= 1 and _sum(stats, "exported") + _sum(stats, "failed") == total
                assert len(delivered) == _sum(stats, "exported")
            else:  # delivered once the destination answers again
                delivered = receiver.wait_for_spans(lambda s: s.scope == "or_middleware", count=total, timeout=20)
                stats = or_middleware.stats()
                assert _sum(stats, "dropped") == 0 and _sum(stats, "failed") == 0, stats
                if fault != "slow":  # the fault was met: a batch went round again (retry or spool)
                    assert _sum(stats, "retried") + _sum(stats, "spooled") >= 1, stats
            users = sorted(s.attributes["user.id"] for s in delivered)
            if fault == "slower_than_the_timeout":
                assert len(set(users)) == total  # every span at least once (the timed-out batch twice)
            else:
                assert len(users) == len(set(users))  # none twice
    finally:
        receiver.close()


def _sum(stats: dict[str, Any], key: str) -> int:
    return sum(counts.get(key, 0) for name, counts in stats.items() if name in ("otlp", "otlp_gateway"))


def _settle(receiver: FaultyOTLPReceiver, done: Callable[[dict[str, Any]], bool], timeout: float = 20.0) -> list[Any]:
    import time

    deadline = time.monotonic() + timeout
    while not done(or_middleware.stats()) and time.monotonic() < deadline:
        or_middleware.force_flush(2000)
        time.sleep(0.05)
    return [s for s in receiver.spans if s.scope == "or_middleware"]
