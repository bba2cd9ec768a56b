"""README's two commands: `or-middleware demo` writes a store that fills every page of `or-middleware ui`."""

from __future__ import annotations

import subprocess
import sys
from urllib.parse import urlencode

import httpx

from or_middleware.demo.serving import serve_asgi
from or_middleware.ui.app import standalone_app
from tests.support.generations import rows


def test_the_demo_store_populates_every_page(tmp_path):
    db = str(tmp_path / "demo.db")
    done = subprocess.run([sys.executable, "-m", "or_middleware", "demo", "--db", db], capture_output=True,
                          text=True, timeout=180, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"or-middleware ui --db {db}" in done.stderr
    generations = rows(db)
    assert {g["user_id"] for g in generations} >= {"alice", "bob", "carol", "mallory"}
    assert any(g["status"] == "error" for g in generations) and any(g["stream"] for g in generations)
    assert any(g["metadata"] for g in generations) and all(g["input_messages"] for g in generations)
    assert rows(db, "SELECT kind FROM security_events") == [{"kind": "prompt_injection"}]
    [agent] = rows(db, "SELECT trace_id FROM generations WHERE route = 'POST /plan' GROUP BY trace_id")
    with serve_asgi(standalone_app(db, token=None, host="127.0.0.1")) as url, httpx.Client(base_url=url) as client:
        def page(path: str, **params: str) -> str:
            answer = client.get(path + (f"?{urlencode(params)}" if params else ""))
            assert answer.status_code == 200, path
            assert 'class="empty"' not in answer.text, f"{path} has an empty table"
            return answer.text

        assert "openai/gpt-4o-mini" in page("/") and "anthropic/claude-sonnet-4" in page("/models")
        assert page("/generations").count('<tr data-id="') == len(generations)
        assert "Echo: What is OpenTelemetry?" in page(f"/generations/{generations[0]['id']}")
        assert page("/trace", id=agent["trace_id"]).count('class="wf-row"') == 2
        assert "session-42" in page("/sessions") and 'id="conversation"' in page("/session", id="session-42")
        assert "mallory" in page("/users") and "prompt_injection" in page("/user", id="mallory")
        assert "ignore_instructions" in page("/security") and page("/traces") and page("/live")
        assert "feature" in page("/", by="metadata.feature")
