"""The standard ``OTEL_EXPORTER_OTLP_*`` variables, as the ``otlp`` destination reads them.

A destination field set explicitly wins; then the traces-specific variable, then the generic
one, then the OTLP default. Same meanings as the OpenTelemetry Python SDK (timeout in seconds).
"""

from __future__ import annotations

import os

from opentelemetry.util.re import parse_env_headers

DEFAULT_HTTP_ENDPOINT = "http://localhost:4318"
DEFAULT_GRPC_ENDPOINT = "http://localhost:4317"
DEFAULT_TIMEOUT_S = 10.0


def _env(name: str) -> str | None:
    value = os.environ.get(f"OTEL_EXPORTER_OTLP_TRACES_{name}") or os.environ.get(f"OTEL_EXPORTER_OTLP_{name}")
    return value.strip() if value and value.strip() else None


def traces_endpoint(protocol: str) -> str:
    """The URL to send to when the destination has no ENDPOINT of its own."""
    specific = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if specific:
        return specific.strip()
    if protocol == "grpc":
        return (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or DEFAULT_GRPC_ENDPOINT).strip()
    base = (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or DEFAULT_HTTP_ENDPOINT).strip()
    return f"{base.rstrip('/')}/v1/traces"


def headers() -> dict[str, str]:
    return {k.lower(): v for k, v in parse_env_headers(_env("HEADERS") or "", liberal=True).items()}


def timeout_s() -> float | None:
    value = _env("TIMEOUT")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def compression() -> str | None:
    return (_env("COMPRESSION") or "").lower() or None


def certificate() -> str | None:
    return _env("CERTIFICATE")


def client_certificate() -> tuple[str | None, str | None]:
    return _env("CLIENT_CERTIFICATE"), _env("CLIENT_KEY")


def insecure() -> bool | None:
    value = _env("INSECURE")
    return None if value is None else value.lower() == "true"
