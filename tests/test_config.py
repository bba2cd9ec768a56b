"""Configuration: env vars, explicit Settings, and start-up errors that name the variable and the fix."""

from __future__ import annotations

import subprocess
import sys

import pytest

from or_middleware.config import ConfigError, OtlpDestination, Settings


def test_destinations_and_their_fields_come_from_env(monkeypatch):
    monkeypatch.setenv("OR_MIDDLEWARE_DESTINATIONS", "otlp, otlp_tempo ,console")
    monkeypatch.setenv("OR_MIDDLEWARE_OTLP__ENDPOINT", "http://127.0.0.1:4318/v1/traces")
    monkeypatch.setenv("OR_MIDDLEWARE_OTLP__HEADERS", "x-token=abc,x-team=a%20b")
    monkeypatch.setenv("OR_MIDDLEWARE_OTLP_TEMPO__PROTOCOL", "grpc")
    monkeypatch.setenv("OR_MIDDLEWARE_OTLP_TEMPO__PRIVACY_MODE", "false")
    monkeypatch.setenv("OR_MIDDLEWARE_LLM_HOSTS", "openrouter=https://eu.openrouter.ai/api/v1,vllm=http://gpu:8000/v1")
    settings = Settings()
    first, second, console = settings.destination_settings()
    assert (first.name, first.endpoint, first.protocol) == ("otlp", "http://127.0.0.1:4318/v1/traces", None)
    assert (second.name, second.kind, second.protocol) == ("otlp_tempo", "otlp", "grpc")
    assert console.kind == "console"
    assert settings.privacy_for(first) is True and settings.privacy_for(second) is False
    assert settings.captures_content
    assert [(h.provider, h.base_url) for h in settings.llm_hosts] == [
        ("openrouter", "https://eu.openrouter.ai/api/v1"),
        ("vllm", "http://gpu:8000/v1"),
    ]


def test_explicit_settings_objects_need_no_env():
    dest = OtlpDestination(endpoint="http://127.0.0.1:4318/v1/traces")
    settings = Settings(destinations=[dest], service_name="shop", privacy_mode=True)
    assert settings.destination_settings()[0].name == "otlp"
    assert settings.resolved_service_name == "shop"
    assert not settings.captures_content


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("OR_MIDDLEWARE_OTLP__PROTOCOL", "foo", "OR_MIDDLEWARE_OTLP__PROTOCOL='foo': Input should be 'http/protobuf'"),
        ("OR_MIDDLEWARE_OTLP__ENDPOINT", "localhost:4318", "OR_MIDDLEWARE_OTLP__ENDPOINT='localhost:4318': "),
        ("OR_MIDDLEWARE_OTLP__HEADERS", "novalue",
         "OR_MIDDLEWARE_OTLP__HEADERS: Value error, expected key=value pairs separated by commas; entry 1"),
        ("OR_MIDDLEWARE_OTLP__SAMPLE_RATE", "2", "OR_MIDDLEWARE_OTLP__SAMPLE_RATE='2': Input should be less than"),
        ("OR_MIDDLEWARE_PRIVACY_MODE", "maybe", "OR_MIDDLEWARE_PRIVACY_MODE='maybe': Input should be a valid boolean"),
        ("OR_MIDDLEWARE_LLM_HOSTS", "vllm=gpu:8000", "OR_MIDDLEWARE_LLM_HOSTS='vllm=gpu:8000': Value error, entry"),
        ("OR_MIDDLEWARE_DESTINATIONS", "otlp,nope", "unknown destination 'nope'; accepted: "),
        ("OR_MIDDLEWARE_DESTINATIONS", "otlp,otlp", "'otlp' is listed twice"),
        ("OR_MIDDLEWARE_PROPAGATE_TRACEPARENT", "some", "Input should be 'gateways', 'all' or 'none'"),
    ],
)
def test_bad_values_fail_with_the_variable_and_what_is_accepted(monkeypatch, variable, value, expected):
    monkeypatch.setenv("OR_MIDDLEWARE_DESTINATIONS", "otlp")
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as raised:
        Settings()
    assert expected in str(raised.value)
    assert "\n" not in str(raised.value)


def test_the_demo_command_prints_the_span_tree():
    result = subprocess.run(
        [sys.executable, "-m", "or_middleware", "demo"], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "POST /ask [SERVER]" in result.stderr
    assert "chat openai/gpt-4o-mini [CLIENT]" in result.stderr
    assert "user alice" in result.stderr
    assert "chat anthropic/claude-sonnet-4 [CLIENT]" in result.stderr
