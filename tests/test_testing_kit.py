"""The testing kit for users' own suites: the sample suite in examples/testing_your_app passes with
the pytest plugin, the plugin is inert for a suite that does not use it, the capture fails usefully,
and ``capture_llm_calls`` works without pytest."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from or_middleware import LLMTracingMiddleware, Settings
from or_middleware.config import ConsoleDestination
from or_middleware.demo.fake_upstream import create_fake_upstream
from or_middleware.demo.serving import serve_asgi
from or_middleware.testing import capture_llm_calls
from tests.support.real_servers import REPO_ROOT

PLUGIN = "or_middleware_pytest"


def run_pytest(*args: str | Path, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OR_MIDDLEWARE_", "PYTEST_"))}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["COLUMNS"] = "400"  # pytest cuts its summary lines at the terminal's width; a long tmp path would cut ours
    return subprocess.run([sys.executable, "-m", "pytest", "-p", PLUGIN, "-p", "no:cacheprovider", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


WRONG = """
import sys
sys.path.insert(0, {example!r})
from fastapi.testclient import TestClient
from llm_app import create_app

def test_expects_another_model(capllm, fake_llm):
    TestClient(create_app(fake_llm.openrouter_base_url)).get("/summary", params={{"text": "hi"}})
    capllm.one(model="openai/gpt-4o-mini")
"""


def test_the_sample_suite_passes_and_a_wrong_expectation_fails_with_what_was_seen(tmp_path):
    """One pytest session (they are slow to start): the sample suite, and a test expecting too much."""
    example = REPO_ROOT / "examples" / "testing_your_app"
    (tmp_path / "test_wrong.py").write_text(WRONG.format(example=str(example)))
    done = run_pytest(example, tmp_path / "test_wrong.py", cwd=tmp_path)
    assert "1 failed, 3 passed" in done.stdout, done.stdout[-4000:] + done.stderr[-2000:]
    assert "::test_expects_another_model - AssertionError" in done.stdout
    assert "expected one LLM call with {'model': 'openai/gpt-4o-mini'}, found 0" in done.stdout
    assert "('GET /summary', 'openai/gpt-4o', None, 'ok')" in done.stdout
    assert not list(tmp_path.glob("*.db")), "the fixture must keep the app from writing a store"


def test_the_plugin_is_inert_for_a_suite_that_does_not_use_it(tmp_path):
    (tmp_path / "test_other.py").write_text(textwrap.dedent("""
        import os
        import sys

        def test_nothing_of_ours_is_loaded_or_changed():
            ours = sorted(m for m in sys.modules if m.startswith("or_middleware"))
            assert ours == ["or_middleware_pytest"], ours
            assert "OR_MIDDLEWARE_DESTINATIONS" not in os.environ
    """))
    done = run_pytest(tmp_path, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-4000:]
    assert "1 passed" in done.stdout


def test_capture_without_pytest_keeps_the_apps_own_privacy_choice():
    """An app configured in code keeps its destinations; with privacy on, no content is captured."""
    from fastapi import FastAPI

    with serve_asgi(create_fake_upstream()) as upstream:
        app = FastAPI()

        @app.get("/ask")
        def ask() -> dict[str, int]:
            return {"status": httpx.post(f"{upstream}/api/v1/chat/completions", json={
                "model": "openai/gpt-4o", "messages": [{"role": "user", "content": "secret plan"}]}).status_code}

        settings = Settings(destinations=[ConsoleDestination(privacy_mode=True)],
                            llm_hosts=f"openrouter={upstream}/api/v1")
        with capture_llm_calls(content=True) as captured:
            traced = LLMTracingMiddleware(app, settings=settings)
            with serve_asgi(traced) as url:
                assert httpx.get(f"{url}/ask", headers={"x-user-id": "bob"}).json() == {"status": 200}
            call = captured.one(user="bob")
        assert call.request_model == "openai/gpt-4o" and call.provider == "openrouter"
        assert call.input_messages is None  # the app's destination has privacy on: nothing read
        assert call.route == "GET /ask" and call.input_tokens == 2
        assert len(captured.calls) == 1
        with pytest.raises(AssertionError, match="expected 2 LLM calls, 1 finished"):
            captured.wait_for(2, timeout=0.2)
    with serve_asgi(create_fake_upstream()):
        pass
    assert len(captured) == 1  # nothing is added once the block has ended
