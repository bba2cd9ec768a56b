"""``or-middleware fake-upstream``: started as a user would, driven by the real SDKs through the lines
it prints, with its scenario switches for every request."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest

from tests.support.real_servers import REPO_ROOT


@contextlib.contextmanager
def fake_upstream(*args: str) -> Iterator[dict[str, str]]:
    """The command on a free port; yields the variables it told us to export."""
    process = subprocess.Popen(
        [sys.executable, "-m", "or_middleware", "fake-upstream", "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        exports: dict[str, str] = {}
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").strip().partition("=")
                exports[name] = value
            if "OR_MIDDLEWARE_LLM_HOSTS" in exports:
                break
        assert exports, "the command printed no export lines"
        yield exports
    finally:
        process.terminate()
        process.wait(20)


def test_default_is_an_openrouter_api_the_openai_sdk_talks_to():
    with fake_upstream() as env:
        base = env["OPENAI_BASE_URL"]
        assert base.endswith("/api/v1") and env["OR_MIDDLEWARE_LLM_HOSTS"] == f"openrouter={base}"
        client = openai.OpenAI(base_url=base, api_key="unused")
        answer = client.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content == "Echo: hi"
        assert answer.usage is not None and answer.usage.prompt_tokens == 1


def test_anthropic_base_url_and_an_error_for_every_call():
    with fake_upstream("--provider", "anthropic", "--error", "529") as env:
        assert env["OR_MIDDLEWARE_LLM_HOSTS"] == f"anthropic={env['ANTHROPIC_BASE_URL']}/v1"
        client = anthropic.Anthropic(base_url=env["ANTHROPIC_BASE_URL"], api_key="unused", max_retries=0)
        with pytest.raises(anthropic.APIStatusError) as raised:
            client.messages.create(model="claude-sonnet-4-5", max_tokens=50,
                                   messages=[{"role": "user", "content": "x"}])
        assert raised.value.status_code == 529


def test_rate_limited_with_retry_after_and_a_request_can_still_pick_its_own_scenario():
    with fake_upstream("--error", "429", "--retry-after", "7") as env:
        url = env["OPENAI_BASE_URL"] + "/chat/completions"
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        answer = httpx.post(url, json=body)
        assert answer.status_code == 429 and answer.headers["retry-after"] == "7"
        both = httpx.post(url, json=body, headers={"x-fake-scenario": "reasoning"})
        assert both.status_code == 429  # the command's scenario and the request's, combined


def test_slow_first_chunk_and_a_midstream_error():
    with fake_upstream("--first-chunk-delay-ms", "400", "--scenario", "midstream_error") as env:
        client = openai.OpenAI(base_url=env["OPENAI_BASE_URL"], api_key="unused", max_retries=0)
        started = time.monotonic()
        stream = client.chat.completions.create(model="m", stream=True,
                                                messages=[{"role": "user", "content": "a b c d"}])
        chunks = []
        with pytest.raises(openai.APIError):
            for chunk in stream:
                chunks.append((time.monotonic() - started, chunk))
        assert chunks and chunks[0][0] >= 0.4  # a lower bound only: nothing can arrive before the wait


def test_an_unknown_provider_is_refused_with_the_choices():
    done = subprocess.run([sys.executable, "-m", "or_middleware", "fake-upstream", "--provider", "nope", "--port", "0"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=60)
    assert done.returncode == 2
    assert "--provider nope: the fake serves" in done.stderr and "openrouter" in done.stderr
