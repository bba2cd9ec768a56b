"""Metrics export failures are ours to log (issue 11 item 14): with an OTLP destination that is down,
export after export, the log has one line naming or_middleware and the destination, never the SDK's
"Transient error ... retrying" lines, and nothing past the outage."""

from __future__ import annotations

import logging
import time

import httpx
import pytest

import or_middleware
from or_middleware import LLMTracingMiddleware
from or_middleware.config import OtlpDestination
from or_middleware.demo.serving import serve_asgi
from tests.apps import chat_body, fastapi_app
from tests.conftest import make_settings
from tests.support.real_servers import free_port


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_an_unreachable_metrics_destination_is_logged_once_as_ours(upstream, tmp_path, monkeypatch, caplog, protocol):
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "100")  # ms: many export cycles during the test
    port = free_port()  # nothing listens: connection refused, every time
    endpoint = f"http://127.0.0.1:{port}" + ("/v1/traces" if protocol != "grpc" else "")
    dest = OtlpDestination(name="tempo", endpoint=endpoint, protocol=protocol, spans="genai", max_retries=5,
                           spool_dir=str(tmp_path), schedule_delay_ms=50, timeout=1)
    app = fastapi_app(upstream.openrouter)
    app.add_middleware(LLMTracingMiddleware, settings=make_settings(upstream, dest))
    caplog.set_level(logging.DEBUG)
    with serve_asgi(app) as url:
        for n in range(3):
            httpx.post(url + "/ask", json=chat_body(f"q{n}"), timeout=30).raise_for_status()
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:  # ~20 export cycles of the metrics reader
            or_middleware.force_flush(5_000)
            time.sleep(0.1)
    metric_lines = [r for r in caplog.records if "metrics" in r.name or "taking metrics" in r.getMessage()]
    assert len(metric_lines) == 1, [r.getMessage() for r in metric_lines]
    [line] = metric_lines
    assert line.getMessage().startswith("or_middleware: destination tempo")
    assert "not taking metrics" in line.getMessage()
    sdk_lines = [r for r in caplog.records if r.name.startswith("opentelemetry") and r.levelno >= logging.WARNING]
    assert not sdk_lines, [r.getMessage() for r in sdk_lines]
    assert not [r for r in caplog.records if "Transient error" in r.getMessage()]
