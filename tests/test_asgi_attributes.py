"""Our server span's request attributes are the OpenTelemetry ASGI instrumentation's, name for name."""

from __future__ import annotations

import itertools

import pytest
from opentelemetry.instrumentation._semconv import _StabilityMode
from opentelemetry.instrumentation.asgi import collect_request_attributes, get_default_span_details

from or_middleware.asgi_attributes import describe_asgi


def _scope(**overrides):
    scope = {
        "type": "http", "http_version": "1.1", "method": "GET", "scheme": "http", "path": "/chat",
        "query_string": b"", "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"python-httpx/0.28")],
        "client": ("127.0.0.1", 51000), "server": ("127.0.0.1", 8000),
    }
    scope.update(overrides)
    return scope


VARIANTS = {
    "method": ["GET", "post", "PROPFIND", " GET ", "", "QUERY"],
    "path": ["/chat", "/", "", "/a b/%41", " /x "],
    "query_string": [b"", b"a=1&b=%20x", b"token=abc&sig=1", "x=1"],
    "headers": [
        [],
        [(b"host", b"example.com")],
        [(b"Host", b"a.example"), (b"HOST", b"b.example")],
        [(b"user-agent", b"Googlebot/2.1"), (b"user-agent", b"second")],
        [(b"user-agent", b"")],
        [(b"host", b"u:p@evil.example"), (b"user-agent", b"alwayson test")],
        [(b"host", "h\u00e9st".encode()), (b"x-other", b"\xff\xfe")],
        [(b"USER-AGENT", b"curl/8")],
    ],
    "server": [("127.0.0.1", 8000), ("10.0.0.1", 80), None, ("", 80), ("::1", "8443"), ("h", "notaport")],
    "client": [("127.0.0.1", 51000), None, ("", 0), ("10.1.1.1", "x")],
    "scheme": ["http", "https", ""],
    "http_version": ["1.1", "2", ""],
}


def _cases():
    for key, values in VARIANTS.items():
        for value in values:
            yield _scope(**{key: value})
    for method, path, headers in itertools.product(VARIANTS["method"], VARIANTS["path"], VARIANTS["headers"]):
        yield _scope(method=method, path=path, headers=headers)
    missing = _scope()
    for key in ("scheme", "http_version", "client", "server", "query_string", "headers", "method", "path"):
        del missing[key]
        yield dict(missing)


@pytest.mark.parametrize("mode", [_StabilityMode.DEFAULT, _StabilityMode.HTTP, _StabilityMode.HTTP_DUP])
def test_same_name_and_attributes_as_the_instrumentation(mode):
    cases = list(_cases())
    assert len(cases) > 200
    for scope in cases:
        name, extra = get_default_span_details(scope)
        expected = collect_request_attributes(scope, mode)
        expected.update(extra)
        assert describe_asgi(scope, mode) == (name, expected), scope


def test_same_with_every_method_captured(monkeypatch):
    monkeypatch.setenv("OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS", "1")
    for method in ("PROPFIND", "get", "weird"):
        scope = _scope(method=method)
        name, _ = get_default_span_details(scope)
        assert describe_asgi(scope, _StabilityMode.DEFAULT) == (name, collect_request_attributes(scope))
