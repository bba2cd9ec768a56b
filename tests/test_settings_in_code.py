"""A bad value given to ``Settings(...)`` (or a destination object) in code names the class and the
field it was given to, not an environment variable the user never set; values from the environment
still name the variable."""

from __future__ import annotations

import pytest

from or_middleware import ConfigError, LLMTracingMiddleware, Settings
from or_middleware.config import LangfuseDestination, OtlpDestination


@pytest.mark.parametrize(("make", "expected"), [
    (lambda: Settings(max_content_bytes=1), "Settings(max_content_bytes=1): Input should be greater than or equal"),
    (lambda: Settings(privacy_mode="maybe"), "Settings(privacy_mode='maybe'): Input should be a valid boolean"),
    (lambda: Settings(destinations=["nope"]), "Settings(destinations=...): unknown destination 'nope'; accepted: "),
    (lambda: Settings(destinations=["otlp", "otlp"]), "Settings(destinations=...): 'otlp' is listed twice"),
    (lambda: Settings(destinations=[42]), "Settings(destinations[0]=42): Input should be a valid string"),
    (lambda: Settings(llm_hosts="garbage"), "Settings(llm_hosts='garbage'): Value error, entry 'garbage'"),
    (lambda: Settings(destinations=[OtlpDestination(protocol="foo")]), "OtlpDestination(protocol='foo'): Input should"),
])
def test_a_value_given_in_code_is_named_by_its_field(monkeypatch, make, expected):
    for name in ("OR_MIDDLEWARE_DESTINATIONS", "OR_MIDDLEWARE_MAX_CONTENT_BYTES"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError) as raised:
        make()
    assert expected in str(raised.value)
    assert "OR_MIDDLEWARE_" not in str(raised.value)


def test_values_from_the_environment_still_name_the_variable(monkeypatch):
    monkeypatch.setenv("OR_MIDDLEWARE_MAX_CONTENT_BYTES", "1")
    with pytest.raises(ConfigError, match=r"OR_MIDDLEWARE_MAX_CONTENT_BYTES='1'"):
        Settings()
    monkeypatch.setenv("OR_MIDDLEWARE_MAX_CONTENT_BYTES", "1024")
    monkeypatch.setenv("OR_MIDDLEWARE_OTLP__PROTOCOL", "foo")
    with pytest.raises(ConfigError, match=r"OR_MIDDLEWARE_OTLP__PROTOCOL='foo'"):
        Settings(destinations=["otlp"])  # the list is code, the preset's fields come from the environment


def test_the_middleware_stops_with_the_field_and_no_secret(monkeypatch):
    from starlette.applications import Starlette

    with pytest.raises(ConfigError) as raised:
        LLMTracingMiddleware(Starlette(), settings=Settings(destinations=[
            LangfuseDestination(public_key="pk", secret_key="sk-lf-canary-0123456789abcdef", host="ftp://nope")]))
    assert "LangfuseDestination(host='ftp://nope')" in str(raised.value)
    assert "canary" not in str(raised.value) and "\n" not in str(raised.value)
