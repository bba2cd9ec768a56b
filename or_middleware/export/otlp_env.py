"""The standard ``OTEL_EXPORTER_OTLP_*`` variables, as the ``otlp`` destination reads them.

A destination field set explicitly wins; then the traces-specific variable, then the generic
one, then the OTLP default. Same meanings as the OpenTelemetry Python SDK (timeout in seconds).
"""

from __future__ import annotations

import logging
import os
from urllib.parse import unquote

from or_middleware.config import ConfigError

logger = logging.getLogger(__name__)


class _HeaderValuesNotShown(logging.Filter):
    """The OpenTelemetry SDK's own parser of these variables (its metric exporters read them too)
    warns about a malformed entry by quoting it; the entry is most likely a credential."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and "Header" in str(record.msg):
            record.args = tuple("(not shown: header values are credentials)" for _ in record.args)
        return True


logging.getLogger("opentelemetry.util.re").addFilter(_HeaderValuesNotShown())

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
    """``k1=v1,k2=v2`` (URL-encoded). Like the OpenTelemetry SDK, a malformed entry is skipped with
    a warning; unlike its parser, the warning never quotes the entry (header values are credentials)."""
    name = _variable("HEADERS") or "OTEL_EXPORTER_OTLP_HEADERS"
    parsed: dict[str, str] = {}
    for index, item in enumerate((_env("HEADERS") or "").split(","), start=1):
        key, sep, value = item.partition("=")
        if not item.strip():
            continue
        if not sep or not key.strip():
            logger.warning("or_middleware: %s: entry %d is not key=value; ignored (not shown: header values "
                           "are credentials)", name, index)
            continue
        parsed[unquote(key.strip()).lower()] = unquote(value.strip())
    return parsed


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
