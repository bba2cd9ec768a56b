"""Adversarial review of issue 14's destinations: credentials planted where a user may put them
never reach what ``or-middleware check`` or start-up prints."""

from __future__ import annotations

import pytest

from or_middleware.cli import main

CANARY_PASSWORD = "CANARYpw7f3a"
CANARY_QUERY = "CANARYq9d1e"


@pytest.mark.parametrize(("names", "variable", "url"), [
    # an http:// webhook off this machine is refused: the refusal quoted the URL as given
    ("webhook", "WEBHOOK__URL", f"http://user:{CANARY_PASSWORD}@example.com/hook?api_key={CANARY_QUERY}"),
    # a URL field that is no http(s) URL: the refusal quoted it as given
    ("datadog", "DATADOG__ENDPOINT", f"ftp://u:{CANARY_PASSWORD}@h.example/x?api_key={CANARY_QUERY}"),
    ("otel-collector", "OTEL_COLLECTOR__ENDPOINT", f"grpcs://u:{CANARY_PASSWORD}@h.example?token={CANARY_QUERY}"),
    # not even a URL: nothing of it can be shown safely
    ("honeycomb", "HONEYCOMB__ENDPOINT", f"u:{CANARY_PASSWORD}@h.example"),
])
def test_a_refused_url_setting_is_named_without_its_credentials(monkeypatch, capsys, names, variable, url):
    monkeypatch.setenv("OR_MIDDLEWARE_DESTINATIONS", names)
    monkeypatch.setenv("OR_MIDDLEWARE_DATADOG__API_KEY", "dd-key-1")
    monkeypatch.setenv("OR_MIDDLEWARE_HONEYCOMB__API_KEY", "hc-key-1")
    monkeypatch.setenv(f"OR_MIDDLEWARE_{variable}", url)
    assert main(["check"]) == 2
    captured = capsys.readouterr()
    printed = captured.out + captured.err
    assert f"OR_MIDDLEWARE_{variable}" in printed  # the line still names the variable
    assert CANARY_PASSWORD not in printed and CANARY_QUERY not in printed
