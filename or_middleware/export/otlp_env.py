"""The standard ``OTEL_EXPORTER_OTLP_*`` variables, as the ``otlp`` destination reads them.

A destination field set explicitly wins; then the traces-specific variable, then the generic
one, then the OTLP default. Same meanings as the OpenTelemetry Python SDK (timeout in seconds).
"""

from __future__ import annotations

import os

from opentelemetry.util.re import parse_env_headers

from or_middleware.config import ConfigError

DEFAULT_HTTP_ENDPOINT = "http://localhost:4318"
DEFAULT_GRPC_ENDPOINT = "http://localhost:4317"
DEFAULT_TIMEOUT_S = 10.0


def _variable(name: str) -> str | None:
    """The variable in force for ``name``: the traces-specific one, else the generic one."""
    for variable in (f"OTEL_EXPORTER_OTLP_TRACES_{name}", f"OTEL_EXPORTER_OTLP_{name}"):
        value = os.environ.get(variable)
        if value and value.strip():
            return variable
    return None


def _env(name: str) -> str | None:
    variable = _variable(name)
    return os.environ[variable].strip() if variable else None


def _file(name: str) -> str | None:
    """A file path variable; a missing or unreadable file stops start-up naming the variable."""
    variable = _variable(name)
    if variable is None:
        return None
    path = os.path.expanduser(os.environ[variable].strip())
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise ConfigError(f"invalid configuration: {variable}={path!r}: no readable file there")
    return path


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
    return _file("CERTIFICATE")


def client_certificate() -> tuple[str | None, str | None]:
    return _file("CLIENT_CERTIFICATE"), _file("CLIENT_KEY")


def tls_variables() -> str:
    """The TLS file variables in force, for a message when their files cannot be loaded."""
    names = [_variable(n) for n in ("CERTIFICATE", "CLIENT_CERTIFICATE", "CLIENT_KEY")]
    return ", ".join(n for n in names if n) or "OTEL_EXPORTER_OTLP_CERTIFICATE"


def insecure() -> bool | None:
    value = _env("INSECURE")
    return None if value is None else value.lower() == "true"
