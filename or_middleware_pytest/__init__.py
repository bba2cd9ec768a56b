"""The pytest plugin of or_middleware (entry point ``pytest11``): the ``capllm`` and ``fake_llm``
fixtures. Registering it does nothing by itself: no hook, no option, no import beyond pytest until
a test asks for a fixture, so other test runs are unchanged (a package of its own, beside
``or_middleware``, so loading it does not import the middleware).

- ``capllm``: every LLM call the code under test makes, as :class:`~or_middleware.testing.LLMCall`
  records in memory. For the test's duration ``OR_MIDDLEWARE_DESTINATIONS`` is empty, so an app
  built during the test (a FastAPI app builds its middleware on the first request) exports
  nothing, writes no file, and its calls' prompts and answers are kept in memory for asserting.
- ``fake_llm``: the fake LLM API of ``or-middleware fake-upstream`` on a free loopback port
  (needs uvicorn: the ``demo`` extra), with ``OR_MIDDLEWARE_LLM_HOSTS`` naming it as OpenRouter.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest


@pytest.fixture
def capllm(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The LLM calls made during the test (``capllm.calls``, ``capllm.one(model=...)``, ...)."""
    from or_middleware.testing.capture import capture_llm_calls

    monkeypatch.setenv("OR_MIDDLEWARE_DESTINATIONS", "")
    with capture_llm_calls(content=True) as captured:
        yield captured


@dataclass(frozen=True)
class FakeLLM:
    """Where the fake LLM API listens, and every request it received."""

    origin: str  # http://127.0.0.1:PORT
    received: list[Any]  # or_middleware.demo.fake_upstream.ReceivedRequest, in arrival order

    @property
    def openrouter_base_url(self) -> str:
        return f"{self.origin}/api/v1"

    @property
    def openai_base_url(self) -> str:
        return f"{self.origin}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.origin  # the anthropic SDK adds /v1/messages itself


@pytest.fixture
def fake_llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLLM]:
    """A fake OpenRouter / OpenAI / Anthropic API for this test (``fake_llm.openrouter_base_url``)."""
    from or_middleware.demo.fake_upstream import create_fake_upstream
    from or_middleware.demo.serving import serve_asgi

    app = create_fake_upstream()
    with serve_asgi(app) as origin:
        fake = FakeLLM(origin, app.state.received)
        monkeypatch.setenv("OR_MIDDLEWARE_LLM_HOSTS", f"openrouter={fake.openrouter_base_url}")
        yield fake
