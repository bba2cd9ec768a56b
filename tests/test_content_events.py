"""CONTENT=event: prompts and completions leave as the conventions' content event (an OTLP log
record ``gen_ai.client.inference.operation.details`` at /v1/logs, with the call's trace and span
ids), not as span attributes; privacy and PII redaction apply to it as to attributes. A real app
through uvicorn, a real OTLP/HTTP receiver of traces and logs."""

from __future__ import annotations

import json

import httpx
import pytest

import or_middleware
from or_middleware import ConfigError, LLMTracingMiddleware
from or_middleware.config import OtlpDestination, PhoenixDestination, Settings
from or_middleware.demo.serving import serve_asgi
from or_middleware.export.content_events import EVENT_NAME
from or_middleware.spans import CONTENT_ATTRIBUTES
from tests.apps import chat_body, fastapi_app
from tests.support.otlp_receiver import OTLPReceiver

EMAIL = "canary.events@example.com"


def logs_of(receiver: OTLPReceiver) -> list[dict]:
    return [record for request in receiver.requests if request.path == "/v1/logs" for record in request.logs]


def test_content_goes_as_log_records_and_not_as_span_attributes(upstream, tmp_path):
    with OTLPReceiver() as open_rx, OTLPReceiver() as private_rx, OTLPReceiver() as redacted_rx:
        common = {"schedule_delay_ms": 20, "spool_dir": str(tmp_path), "metrics": False, "content": "event"}
        settings = Settings(service_name="shop", llm_hosts=f"openrouter={upstream.openrouter}", destinations=[
            OtlpDestination(endpoint=open_rx.traces_url, privacy_mode=False, **common),
            OtlpDestination(name="otlp_private", endpoint=private_rx.traces_url, **common),  # privacy on
            OtlpDestination(name="otlp_redacted", endpoint=redacted_rx.traces_url, privacy_mode=False,
                            redact_pii=True, **common),
        ])
        app = fastapi_app(upstream.openrouter)
        app.add_middleware(LLMTracingMiddleware, settings=settings)
        with serve_asgi(app) as url:
            httpx.post(f"{url}/ask", json=chat_body(f"mail {EMAIL} please"), headers={"x-user-id": "alice"},
                       timeout=30).raise_for_status()
            assert or_middleware.force_flush()
        for rx in (open_rx, private_rx, redacted_rx):
            rx.wait_for_spans(lambda s: s.scope == "or_middleware")
        open_rx.wait_for_requests(count=2)
        redacted_rx.wait_for_requests(count=2)

    [span] = [s for s in open_rx.spans if s.scope == "or_middleware"]
    assert not CONTENT_ATTRIBUTES & set(span.attributes)  # the span carries no content
    [event] = logs_of(open_rx)
    assert event["event_name"] == EVENT_NAME and event["severity"] == "INFO"
    assert (event["trace_id"], event["span_id"]) == (span.trace_id, span.span_id)
    a = event["attributes"]
    assert json.loads(a["gen_ai.input.messages"])[0]["parts"][0]["content"] == f"mail {EMAIL} please"
    assert "Echo" in a["gen_ai.output.messages"]
    assert a["gen_ai.request.model"] == "openai/gpt-4o-mini" and a["gen_ai.usage.input_tokens"] > 0
    assert event["resource"]["service.name"] == "shop"

    assert logs_of(private_rx) == []  # privacy mode: no content, so no event
    assert EMAIL not in json.dumps([s.attributes for s in private_rx.spans])
    [redacted] = logs_of(redacted_rx)
    assert EMAIL not in json.dumps(redacted) and "[EMAIL]" in redacted["attributes"]["gen_ai.input.messages"]


@pytest.mark.parametrize("destination", [
    OtlpDestination(endpoint="http://127.0.0.1:1/v1/traces", protocol="grpc", content="event"),
    OtlpDestination(endpoint="http://127.0.0.1:1/custom/path", content="event"),
    PhoenixDestination(endpoint="http://127.0.0.1:1/ingest", content="event"),
])
def test_content_event_needs_an_otlp_http_destination_beside_its_logs(destination):
    with pytest.raises(ConfigError) as raised:
        or_middleware.export.destinations.build_pipeline(destination, Settings(destinations=[]))
    assert "__CONTENT=event" in str(raised.value) and "\n" not in str(raised.value)
