"""Bad configuration: every way to get a setting wrong stops start-up with one line that names the
variable, the value and what is accepted.

The wrong-type table is generated from the settings classes themselves (every bool, int, float,
choice and URL field of the top-level settings, the security thresholds and every destination
preset), so a setting added tomorrow is covered tomorrow. Hand-written cases add what types
cannot say: unknown destinations, missing required fields, invalid filter rules and regexes.
(tests/test_config.py has the first examples; this is the whole table.)
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any, Literal

import pytest
from starlette.applications import Starlette

from or_middleware import ConfigError, LLMTracingMiddleware, LLMTracingWSGIMiddleware
from or_middleware.config import PRESETS, DestinationSettings, RemoteDestination, SecuritySettings, Settings

ACCEPTED_HINTS = ("should be", "expected", "accepted", "needs", "must", "letters, digits", "unknown",
                  "not a valid", "name a second one")

# Values that make each required field of a preset valid, so only the field under test is wrong.
VALID_REQUIRED = {"endpoint": "https://example.invalid/otlp", "instance_id": "123", "api_token": "t",
                  "api_key": "k", "public_key": "pk", "secret_key": "sk", "space_id": "s",
                  "dsn": "https://k@o0.ingest.sentry.io/42", "url": "https://hooks.example.invalid/otel",
                  "entity": "e", "project": "p"}


def _wrong_value(annotation: Any) -> str | None:
    """A value of the wrong kind for a field of this type, or None when any string is acceptable."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _wrong_value(args[0])
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _wrong_value(args[0])
    if origin is Literal:
        return "bogus-choice"
    if annotation is bool:
        return "maybe"
    if annotation is int:
        return "lots"
    if annotation is float:
        return "fast"
    return None


def _field_cases() -> list[tuple[dict[str, str], str, str]]:
    """(environment, the variable, the bad value) for every typed field."""
    cases = []
    for name, field in Settings.model_fields.items():
        value = _wrong_value(field.annotation)
        if value is not None:
            variable = f"OR_MIDDLEWARE_{name.upper()}"
            cases.append(({"OR_MIDDLEWARE_DESTINATIONS": "console", variable: value}, variable, value))
    for name, field in SecuritySettings.model_fields.items():
        value = _wrong_value(field.annotation)
        if value is not None:
            variable = f"OR_MIDDLEWARE_SECURITY__{name.upper()}"
            cases.append(({"OR_MIDDLEWARE_DESTINATIONS": "console", variable: value}, variable, value))
    for kind, preset in sorted(PRESETS.items()):
        valid = {f"OR_MIDDLEWARE_{kind.upper()}__{f.upper()}": VALID_REQUIRED[f] for f in preset.required}
        if kind == "braintrust":
            valid["OR_MIDDLEWARE_BRAINTRUST__PROJECT_ID"] = "p"
        if kind == "opik":  # Comet cloud (the default endpoint) needs a key and a workspace
            valid.update({"OR_MIDDLEWARE_OPIK__API_KEY": "k", "OR_MIDDLEWARE_OPIK__WORKSPACE": "w"})
        url_fields = set(getattr(preset, "url_fields", ()))
        if kind in ("otlp", "otel_collector"):
            url_fields |= {"endpoint", "metrics_endpoint"}
        for name, field in preset.model_fields.items():
            value = "not-a-url" if name in url_fields else _wrong_value(field.annotation)
            if value is None or name == "name":
                continue
            variable = f"OR_MIDDLEWARE_{kind.upper()}__{name.upper()}"
            cases.append(({"OR_MIDDLEWARE_DESTINATIONS": kind, **valid, variable: value}, variable, value))
    return cases


HAND_WRITTEN: list[tuple[str, dict[str, str], str, str | None]] = [
    # (id, environment, the variable the message must name, the value it must show)
    ("unknown_destination", {"OR_MIDDLEWARE_DESTINATIONS": "otlp,zipkin"}, "OR_MIDDLEWARE_DESTINATIONS", "zipkin"),
    ("destination_twice", {"OR_MIDDLEWARE_DESTINATIONS": "console,console"}, "OR_MIDDLEWARE_DESTINATIONS", "console"),
    ("label_without_kind", {"OR_MIDDLEWARE_DESTINATIONS": "_tempo"}, "OR_MIDDLEWARE_DESTINATIONS", "_tempo"),
    ("braintrust_without_project",
     {"OR_MIDDLEWARE_DESTINATIONS": "braintrust", "OR_MIDDLEWARE_BRAINTRUST__API_KEY": "k"},
     "OR_MIDDLEWARE_BRAINTRUST__PROJECT_ID", None),
    ("filter_not_json", {"OR_MIDDLEWARE_DESTINATIONS": "console", "OR_MIDDLEWARE_CONSOLE__FILTER": "{rules"},
     "OR_MIDDLEWARE_CONSOLE__FILTER", "{rules"),
    ("filter_unknown_field", {"OR_MIDDLEWARE_DESTINATIONS": "console", "OR_MIDDLEWARE_CONSOLE__FILTER":
                              json.dumps({"rules": [{"field": "colour", "op": "equals", "value": "red"}]})},
     "OR_MIDDLEWARE_CONSOLE__FILTER", "colour"),
    ("filter_unknown_op", {"OR_MIDDLEWARE_DESTINATIONS": "console", "OR_MIDDLEWARE_CONSOLE__FILTER":
                           json.dumps({"rules": [{"field": "model", "op": "sounds_like", "value": "gpt"}]})},
     "OR_MIDDLEWARE_CONSOLE__FILTER", "sounds_like"),
    ("filter_invalid_regex", {"OR_MIDDLEWARE_DESTINATIONS": "console", "OR_MIDDLEWARE_CONSOLE__FILTER":
                              json.dumps({"rules": [{"field": "model", "op": "regex", "value": "gpt-(4"}]})},
     "OR_MIDDLEWARE_CONSOLE__FILTER", "gpt-(4"),
    ("filter_number_op_on_text", {"OR_MIDDLEWARE_DESTINATIONS": "console", "OR_MIDDLEWARE_CONSOLE__FILTER":
                                  json.dumps({"rules": [{"field": "total_cost", "op": "gt", "value": "cheap"}]})},
     "OR_MIDDLEWARE_CONSOLE__FILTER", "cheap"),
    ("filter_bad_logic", {"OR_MIDDLEWARE_DESTINATIONS": "console", "OR_MIDDLEWARE_CONSOLE__FILTER":
                          json.dumps({"logic": "xor", "rules": []})}, "OR_MIDDLEWARE_CONSOLE__FILTER", "xor"),
    ("pii_pattern_invalid_regex", {"OR_MIDDLEWARE_DESTINATIONS": "console",
                                   "OR_MIDDLEWARE_PII_PATTERNS": json.dumps({"EMPLOYEE": "EMP-(\\d{6}"})},
     "OR_MIDDLEWARE_PII_PATTERNS", "EMP-("),
    ("pii_pattern_bad_name", {"OR_MIDDLEWARE_DESTINATIONS": "console",
                              "OR_MIDDLEWARE_PII_PATTERNS": json.dumps({"employee id": "EMP-\\d+"})},
     "OR_MIDDLEWARE_PII_PATTERNS", "employee id"),
    ("pii_patterns_not_json", {"OR_MIDDLEWARE_DESTINATIONS": "console", "OR_MIDDLEWARE_PII_PATTERNS": "EMP-\\d+"},
     "OR_MIDDLEWARE_PII_PATTERNS", "EMP-"),
    ("rate_limit", {"OR_MIDDLEWARE_DESTINATIONS": "console", "OR_MIDDLEWARE_USER_RATE_LIMIT": "often"},
     "OR_MIDDLEWARE_USER_RATE_LIMIT", "often"),
    ("llm_hosts", {"OR_MIDDLEWARE_DESTINATIONS": "console", "OR_MIDDLEWARE_LLM_HOSTS": "vllm=gpu:8000"},
     "OR_MIDDLEWARE_LLM_HOSTS", "gpu:8000"),
    ("otlp_headers", {"OR_MIDDLEWARE_DESTINATIONS": "otlp", "OR_MIDDLEWARE_OTLP__HEADERS": "x-token"},
     "OR_MIDDLEWARE_OTLP__HEADERS", None),  # header values are credentials: never echoed (issue 11 item 4)
    ("sample_rate_range", {"OR_MIDDLEWARE_DESTINATIONS": "console", "OR_MIDDLEWARE_CONSOLE__SAMPLE_RATE": "1.5"},
     "OR_MIDDLEWARE_CONSOLE__SAMPLE_RATE", "1.5"),
    ("queue_size_range", {"OR_MIDDLEWARE_DESTINATIONS": "console", "OR_MIDDLEWARE_CONSOLE__MAX_QUEUE_SIZE": "0"},
     "OR_MIDDLEWARE_CONSOLE__MAX_QUEUE_SIZE", "0"),
    ("content_cap_range", {"OR_MIDDLEWARE_DESTINATIONS": "console", "OR_MIDDLEWARE_MAX_CONTENT_BYTES": "10"},
     "OR_MIDDLEWARE_MAX_CONTENT_BYTES", "10"),
]


def _required_cases() -> list[tuple[str, dict[str, str], str, str | None]]:
    """Each preset with required fields, configured with none of them."""
    cases = []
    for kind, preset in sorted(PRESETS.items()):
        if preset.required:
            variable = f"OR_MIDDLEWARE_{kind.upper()}__{preset.required[0].upper()}"
            cases.append((f"{kind}_without_{'_'.join(preset.required)}", {"OR_MIDDLEWARE_DESTINATIONS": kind},
                          variable, None))
    return cases


def start_up(monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]) -> str:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    # The ASGI middleware keeps the refusal and answers lifespan.startup.failed with it (startup.py)
    middleware = LLMTracingMiddleware(Starlette())
    refusal = getattr(middleware, "_refusal", None)
    assert refusal is not None, "a bad configuration must refuse start-up"
    return str(refusal.error()).removeprefix("or_middleware: ")


def assert_one_good_line(message: str, variable: str, value: str | None) -> None:
    assert "\n" not in message, message
    assert variable in message, message
    if value is not None:
        assert value in message, message
    assert any(hint in message for hint in ACCEPTED_HINTS), message


FIELD_CASES = _field_cases()


@pytest.mark.parametrize(("environment", "variable", "value"), FIELD_CASES, ids=[c[1] for c in FIELD_CASES])
def test_a_value_of_the_wrong_type_stops_start_up(monkeypatch, environment, variable, value):
    assert_one_good_line(start_up(monkeypatch, environment), variable, value)


ALL_HAND_WRITTEN = HAND_WRITTEN + _required_cases()


@pytest.mark.parametrize(("case", "environment", "variable", "value"), ALL_HAND_WRITTEN,
                         ids=[c[0] for c in ALL_HAND_WRITTEN])
def test_a_wrong_setting_stops_start_up(monkeypatch, case, environment, variable, value):
    assert_one_good_line(start_up(monkeypatch, environment), variable, value)


def test_the_table_covers_every_preset_and_typed_setting():
    """Guard for the generator: every preset is in it, and so are the fields tests/test_config.py started with."""
    variables = {variable for _, variable, _ in FIELD_CASES}
    assert {f"OR_MIDDLEWARE_{kind.upper()}__MAX_QUEUE_SIZE" for kind in PRESETS} <= variables
    assert {"OR_MIDDLEWARE_PRIVACY_MODE", "OR_MIDDLEWARE_PROPAGATE_TRACEPARENT", "OR_MIDDLEWARE_OTLP__PROTOCOL",
            "OR_MIDDLEWARE_OTLP__ENDPOINT", "OR_MIDDLEWARE_SECURITY__BURST_REQUESTS"} <= variables
    assert all(issubclass(p, DestinationSettings) for p in PRESETS.values())
    assert any(issubclass(p, RemoteDestination) for p in PRESETS.values())


def test_the_wsgi_middleware_stops_the_same_way(monkeypatch):
    monkeypatch.setenv("OR_MIDDLEWARE_DESTINATIONS", "langfuse")
    with pytest.raises(ConfigError) as raised:
        LLMTracingWSGIMiddleware(lambda environ, start_response: [])
    assert_one_good_line(str(raised.value), "OR_MIDDLEWARE_LANGFUSE__PUBLIC_KEY", None)


def test_a_secret_in_a_bad_value_is_not_echoed(monkeypatch):
    """The message shows the value, except where the value is a credential."""
    message = start_up(monkeypatch, {"OR_MIDDLEWARE_DESTINATIONS": "otlp",
                                     "OR_MIDDLEWARE_OTLP__HEADERS": "authorization Bearer sk-or-v1-" + "7e57" * 16})
    assert "OR_MIDDLEWARE_OTLP__HEADERS" in message
    assert "7e577e57" not in message, message
