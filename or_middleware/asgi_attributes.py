"""An ASGI request's server span name and attributes, as the OpenTelemetry ASGI instrumentation names them.

The instrumentation's ``collect_request_attributes`` decodes every header once per header it
looks up and parses the URL twice to redact it; with a ``SPANS=all`` destination it ran on every
request and cost more than the span itself. For the default attribute names (no
``OTEL_SEMCONV_STABILITY_OPT_IN``) the same attributes are built here in one pass over the
headers; any other mode is left to the instrumentation's own functions. Identical output is a
test (tests/test_asgi_attributes.py compares both on many scopes).
"""

from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import unquote

from opentelemetry.instrumentation._semconv import _StabilityMode
from opentelemetry.instrumentation.asgi import collect_request_attributes, get_default_span_details
from opentelemetry.semconv._incubating.attributes.http_attributes import (
    HTTP_FLAVOR,
    HTTP_HOST,
    HTTP_METHOD,
    HTTP_SCHEME,
    HTTP_SERVER_NAME,
    HTTP_TARGET,
    HTTP_URL,
    HTTP_USER_AGENT,
)
from opentelemetry.semconv._incubating.attributes.net_attributes import NET_HOST_PORT, NET_PEER_IP, NET_PEER_PORT
from opentelemetry.semconv._incubating.attributes.user_agent_attributes import USER_AGENT_SYNTHETIC_TYPE
from opentelemetry.util.http import detect_synthetic_user_agent, redact_url, sanitize_method

# RFC 9110 methods: sanitize_method keeps them whatever its environment variable says.
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"})


def _decode(value: bytes) -> str:
    """The instrumentation's header decoding (UTF-8, else unicode_escape)."""
    try:
        return value.decode("utf-8")
    except ValueError:
        return value.decode("unicode_escape")


def _method(method: str) -> str:
    upper = method.upper()
    return upper if upper in _KNOWN_METHODS else sanitize_method(method)


def _put_int(result: dict[str, Any], key: str, value: Any) -> None:
    """The instrumentation's set_int_attribute: a value that is no integer is left out."""
    with contextlib.suppress(ValueError, TypeError):
        result[key] = int(value)


def describe_asgi(scope: dict[str, Any], mode: object) -> tuple[str, dict[str, Any]]:
    """``(span name, request attributes)`` of an HTTP scope, as the instrumentation makes them."""
    if mode is not _StabilityMode.DEFAULT:
        name, extra = get_default_span_details(scope)
        attributes = collect_request_attributes(scope, mode)
        attributes.update(extra)
        return name, attributes
    return _span_name(scope), _default_attributes(scope)


def _span_name(scope: dict[str, Any]) -> str:
    path = scope.get("path", "").strip()
    method = _method(scope.get("method", "").strip())
    if method == "_OTHER":
        method = "HTTP"
    if method and path:
        return f"{method} {path}"
    return path or method


def _default_attributes(scope: dict[str, Any]) -> dict[str, Any]:
    hosts: list[str] = []
    user_agent: str | None = None
    for key, value in scope.get("headers") or ():
        # bytes.lower() is the instrumentation's decode().lower() for these names: no other
        # character lower-cases to the ASCII letters of "host" or "user-agent"
        name = key.lower()
        if name == b"host":
            hosts.append(_decode(value))
        elif name == b"user-agent" and user_agent is None:
            user_agent = _decode(value)
    server = scope.get("server") or ["0.0.0.0", 80]
    port = server[1]
    server_host = server[0] + (":" + str(port) if str(port) != "80" else "")
    path = scope.get("path", "")
    url = scope.get("scheme", "http") + "://" + (hosts[0] if hosts else server_host) + path
    query = scope.get("query_string")
    if query:
        if isinstance(query, bytes):
            query = query.decode("utf8")
        url += "?" + unquote(query)
    result: dict[str, Any] = {}
    if scheme := scope.get("scheme"):
        result[HTTP_SCHEME] = scheme
    if server_host:
        result[HTTP_HOST] = server_host
    if port:
        _put_int(result, NET_HOST_PORT, port)
    if flavor := scope.get("http_version"):
        result[HTTP_FLAVOR] = flavor
    if path:
        result[HTTP_TARGET] = path
    # redact_url parses the URL twice; without "@" or "?" it has nothing to change
    result[HTTP_URL] = redact_url(url) if "@" in url or "?" in url else url
    if (method := scope.get("method", "")) and (normalised := _method(method).strip()):
        result[HTTP_METHOD] = normalised
    if hosts:
        result[HTTP_SERVER_NAME] = ",".join(hosts)
    if user_agent is not None:
        if user_agent:
            result[HTTP_USER_AGENT] = user_agent
        if synthetic := detect_synthetic_user_agent(user_agent):
            result[USER_AGENT_SYNTHETIC_TYPE] = synthetic
    client = scope.get("client")
    if client is not None:
        if client[0]:
            result[NET_PEER_IP] = client[0]
        if client[1]:
            _put_int(result, NET_PEER_PORT, client[1])
    return {k: v for k, v in result.items() if v is not None}
