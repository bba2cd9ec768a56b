"""``or-middleware check``: one test span per destination, OK or the precise reason; ``--dry-run``."""

from __future__ import annotations

import base64
import socket
import subprocess
import sys

import httpx
import pytest

from or_middleware.cli import main
from or_middleware.export.transports import describe_network_error
from tests.support.capture_receiver import CaptureReceiver
from tests.support.otlp_receiver import OTLPGrpcReceiver, OTLPReceiver


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def configure(monkeypatch, names: str, **variables: str) -> None:
    monkeypatch.setenv("OR_MIDDLEWARE_DESTINATIONS", names)
    for key, value in variables.items():
        monkeypatch.setenv(f"OR_MIDDLEWARE_{key}", value)


def test_check_tests_each_connection_like_broadcast_with_an_empty_payload(monkeypatch, capsys, tmp_path):
    """Broadcast's Test Connection: an empty OTLP payload, X-Test-Connection: true, the real auth headers."""
    with OTLPReceiver() as langfuse, OTLPGrpcReceiver() as grpc_rx, CaptureReceiver() as posthog, \
            OTLPReceiver() as hook:
        configure(monkeypatch, "langfuse,otlp,posthog,webhook,console,local",
                  LANGFUSE__PUBLIC_KEY="pk-1", LANGFUSE__SECRET_KEY="sk-1", LANGFUSE__HOST=langfuse.url,
                  OTLP__ENDPOINT=grpc_rx.url, OTLP__PROTOCOL="grpc",
                  POSTHOG__API_KEY="phc_1", POSTHOG__HOST=posthog.url,
                  WEBHOOK__URL=hook.url + "/in", WEBHOOK__HEADERS='{"X-Team": "llm"}',
                  LOCAL__PATH=str(tmp_path / "traces.db"))
        assert main(["check"]) == 0
        [request] = langfuse.wait_for_requests()
        [grpc_request] = grpc_rx.wait_for_requests()
        [batch] = posthog.wait_for_requests()
        [webhook] = hook.wait_for_requests()
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in out] == [["OK", "langfuse"], ["OK", "otlp"], ["OK", "posthog"],
                                                  ["OK", "webhook"], ["OK", "console"], ["OK", "local"]]
    assert "/api/public/otel/v1/traces (HTTP 200" in out[0]
    assert request.path == "/api/public/otel/v1/traces" and request.body == b""  # an empty ExportTraceServiceRequest
    assert request.headers["x-test-connection"] == "true" and request.headers["authorization"].startswith("Basic ")
    assert request.headers["content-type"] == "application/x-protobuf" and langfuse.spans == []
    assert grpc_request.headers["x-test-connection"] == "true" and grpc_rx.spans == []
    assert batch.json == {"api_key": "phc_1", "historical_migration": False, "batch": []}
    assert batch.headers["x-test-connection"] == "true"
    assert webhook.path == "/in" and webhook.headers["x-team"] == "llm"
    assert webhook.headers["content-type"] == "application/json" and webhook.body == b'{"resourceSpans":[]}'
    assert "created on first write" in out[5] and not (tmp_path / "traces.db").exists()  # nothing written


def test_check_span_sends_one_test_span_through_the_dialect(monkeypatch, capsys):
    with OTLPReceiver() as langfuse, CaptureReceiver() as posthog:
        configure(monkeypatch, "langfuse,posthog",
                  LANGFUSE__PUBLIC_KEY="pk-1", LANGFUSE__SECRET_KEY="sk-1", LANGFUSE__HOST=langfuse.url,
                  POSTHOG__API_KEY="phc_1", POSTHOG__HOST=posthog.url)
        assert main(["check", "--span"]) == 0
        [span] = langfuse.wait_for_spans()
        [request] = posthog.wait_for_requests()
    assert span.name == "chat or-middleware-check" and span.attributes["or_middleware.check"] is True
    assert span.attributes["langfuse.observation.type"] == "generation"  # exactly what the middleware sends
    assert request.json["batch"][0]["event"] == "$ai_generation"
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == ["OK", "OK"]


@pytest.mark.parametrize(("status", "ok"), [(200, True), (202, True), (400, True), (401, False), (403, False),
                                            (404, False), (415, False), (429, False), (500, False), (503, False)])
def test_test_connection_accepts_2xx_or_400_only(monkeypatch, capsys, status, ok):
    with OTLPReceiver() as receiver:
        receiver.respond(status=status)
        configure(monkeypatch, "otlp", OTLP__ENDPOINT=receiver.traces_url)
        assert main(["check"]) == (0 if ok else 1)
        assert len(receiver.requests) == 1  # one attempt: no retry, nothing spooled
    line = capsys.readouterr().out
    assert line.startswith("OK    otlp" if ok else "FAIL  otlp")
    assert f"HTTP {status}" in line


def test_check_says_why_each_destination_failed_and_exits_non_zero(monkeypatch, capsys):
    port = closed_port()
    with OTLPReceiver() as auth, OTLPReceiver() as broken:
        auth.respond(status=401)
        broken.respond(status=500)
        configure(monkeypatch, "otlp,grafana,otlp_broken,phoenix",
                  OTLP__ENDPOINT=f"http://127.0.0.1:{port}/v1/traces",
                  GRAFANA__ENDPOINT=auth.url, GRAFANA__INSTANCE_ID="1", GRAFANA__API_TOKEN="bad",
                  OTLP_BROKEN__ENDPOINT=broken.traces_url,
                  PHOENIX__ENDPOINT=f"https://127.0.0.1:{broken.url.rsplit(':', 1)[1]}/v1/traces")
        assert main(["check"]) == 1
        assert len(broken.requests) == 1  # one attempt: no retry, no spool
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("FAIL  otlp") and out[0].endswith(f"connect: connection refused by 127.0.0.1:{port}")
    assert out[1].startswith("FAIL  grafana") and "auth rejected (HTTP 401: fault status 401)" in out[1]
    assert out[2].startswith("FAIL  otlp_broken") and out[2].endswith("HTTP 500: fault status 500")
    assert out[3].startswith("FAIL  phoenix") and ": TLS: handshake with 127.0.0.1:" in out[3]


def test_dns_failures_are_named():
    error = httpx.ConnectError("[Errno -2] Name or service not known")
    error.__cause__ = socket.gaierror(-2, "Name or service not known")
    assert describe_network_error(error, "https://otlp.example.invalid/v1/traces") == \
        "DNS: cannot resolve otlp.example.invalid"


def test_dry_run_validates_and_shows_targets_without_sending_or_revealing_secrets(monkeypatch, capsys, tmp_path):
    with OTLPReceiver() as receiver:
        configure(monkeypatch, "langfuse,arize,otlp_eu",
                  LANGFUSE__PUBLIC_KEY="pk-1", LANGFUSE__SECRET_KEY="sk-lf-very-secret",
                  ARIZE__API_KEY="ak-very-secret", ARIZE__SPACE_ID="space", ARIZE__PROJECT="shop",
                  OTLP_EU__ENDPOINT=receiver.traces_url, OTLP_EU__PRIVACY_MODE="false", OTLP_EU__SAMPLE_RATE="0.5",
                  OTLP_EU__FILTER='{"rules": [{"field": "user", "op": "exists"}]}', SPOOL_DIR=str(tmp_path))
        assert main(["check", "--dry-run"]) == 0
        assert receiver.requests == []
    out = capsys.readouterr().out
    assert "https://cloud.langfuse.com/api/public/otel/v1/traces" in out
    assert "https://otlp.arize.com/v1/traces" in out and "openinference.project.name=shop" in out
    assert "dialect=openinference" in out and "dialect=langfuse" in out
    assert "privacy=off" in out and "sample_rate=0.5" in out and "filter=1 rule(s)" in out
    assert f"spool={tmp_path}/otlp_eu-" in out
    assert "secret" not in out  # header names only


@pytest.mark.parametrize("args", [["check"], ["check", "--dry-run"]])
def test_an_invalid_configuration_exits_2_with_the_variable(monkeypatch, capsys, args):
    configure(monkeypatch, "braintrust", BRAINTRUST__API_KEY="k")
    assert main(args) == 2
    assert "OR_MIDDLEWARE_BRAINTRUST__PROJECT_ID" in capsys.readouterr().err


def test_the_console_script_has_the_check_command(monkeypatch):
    env = {"PATH": "/usr/bin:/bin", "OR_MIDDLEWARE_DESTINATIONS": "console"}
    result = subprocess.run([sys.executable, "-m", "or_middleware", "check", "--dry-run"], capture_output=True,
                            text=True, timeout=60, env=env, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK    console")


class LeakyReceiver(OTLPReceiver):
    """A hostile peer: refuses everything and echoes every credential it got in its error message."""

    def judge(self, request):
        echoed = " ".join(f"{k}={v}" for k, v in request.headers.items())
        return 401, f"rejected: {echoed} url={request.path}"


def test_check_never_prints_a_credential_even_when_the_destination_echoes_it(monkeypatch, capsys, caplog):
    canaries = ["DDCANARY0001", "SENTRYCANARY02", "WEBHOOKCANARY03", "PASSCANARY04", "QUERYCANARY05",
                "OTLPHEADERCANARY06", "GRAFANACANARY07", "OPIKCANARY08"]
    with LeakyReceiver() as leaky:
        port = leaky.url.rsplit(":", 1)[1]
        configure(monkeypatch, "datadog,sentry,webhook,otlp,grafana,opik",
                  DATADOG__API_KEY=canaries[0], DATADOG__ENDPOINT=leaky.url,
                  SENTRY__DSN=f"http://{canaries[1]}@127.0.0.1:{port}/42",
                  WEBHOOK__URL=leaky.url + "/hook", WEBHOOK__HEADERS=f'{{"Authorization": "Bearer {canaries[2]}"}}',
                  OTLP__ENDPOINT=f"http://user:{canaries[3]}@127.0.0.1:{port}/v1/traces?api_key={canaries[4]}",
                  OTLP__HEADERS=f"x-api-key={canaries[5]}",
                  GRAFANA__ENDPOINT=leaky.url, GRAFANA__INSTANCE_ID="1", GRAFANA__API_TOKEN=canaries[6],
                  OPIK__API_KEY=canaries[7], OPIK__WORKSPACE="acme", OPIK__ENDPOINT=leaky.url)
        for args in (["check"], ["check", "--dry-run"], ["check", "--span"]):
            main(args)
        assert len(leaky.requests) == 12  # the canaries did reach the destination
    captured = capsys.readouterr()
    printed = captured.out + captured.err + "\n".join(r.getMessage() for r in caplog.records)
    assert printed.count("FAIL ") == 12 and "auth rejected (HTTP 401: rejected:" in printed
    grafana_basic = base64.b64encode(f"1:{canaries[6]}".encode()).decode()
    for canary in [*canaries, grafana_basic]:
        assert canary not in printed, canary
    assert f"http://127.0.0.1:{port}/v1/traces?api_key=REDACTED" in printed  # the shared safe_url


def test_check_fails_a_local_store_it_could_not_write(monkeypatch, capsys, tmp_path):
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "garbage.db").write_bytes(b"this is not an sqlite database, not at all" * 100)
    configure(monkeypatch, "local,local_broken", LOCAL__PATH=str(tmp_path / "a-file" / "traces.db"),
              LOCAL_BROKEN__PATH=str(tmp_path / "garbage.db"))
    assert main(["check"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("FAIL  local ") and "is not a writable directory" in out[0]
    assert out[1].startswith("FAIL  local_broken") and "not a database" in out[1]
