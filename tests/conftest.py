"""Shared fixtures: a fake LLM upstream and OTLP receivers on loopback, and a clean runtime per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

import or_middleware
from or_middleware.config import OtlpDestination, Settings
from or_middleware.demo.fake_upstream import create_fake_upstream
from or_middleware.demo.serving import serve_asgi
from tests.support.otlp_receiver import OTLPReceiver


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No OR_MIDDLEWARE_/OTEL_ variable of the developer's shell leaks into a test,
    and every runtime a test built is shut down after it."""
    for name in list(os.environ):
        if name.startswith(("OR_MIDDLEWARE_", "OTEL_")):
            monkeypatch.delenv(name)
    yield
    or_middleware.shutdown_all()


class Upstream:
    """The fake LLM API: its base URLs and what it received."""

    def __init__(self, url: str, app: Any) -> None:
        self.url = url
        self.app = app
        self.openrouter = f"{url}/api/v1"
        self.openai = f"{url}/v1"
        # another loopback name for the same server, so "/v1" can mean Anthropic there
        self.anthropic = url.replace("127.0.0.1", "localhost")  # the SDK appends /v1/messages

    @property
    def received(self) -> list[Any]:
        return self.app.state.received


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    app = create_fake_upstream()
    with serve_asgi(app) as url:
        yield Upstream(url, app)


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as r:
        yield r
        or_middleware.shutdown_all()  # flush while the receiver still listens


@pytest.fixture
def content_receiver() -> Iterator[OTLPReceiver]:
    """A second destination, with privacy mode off."""
    with OTLPReceiver() as r:
        yield r
        or_middleware.shutdown_all()


def otlp(receiver: OTLPReceiver, name: str = "otlp", **options: Any) -> OtlpDestination:
    options.setdefault("timeout", 3)
    options.setdefault("metrics", False)  # OTLPReceiver takes traces only; metrics tests use OTLPMetricsReceiver
    return OtlpDestination(name=name, endpoint=receiver.traces_url, schedule_delay_ms=50, **options)


def make_settings(upstream: Upstream, *destinations: OtlpDestination, **options: Any) -> Settings:
    hosts = f"openrouter={upstream.openrouter},openai={upstream.openai},anthropic={upstream.anthropic}/v1"
    return Settings(destinations=list(destinations), llm_hosts=hosts, **options)
