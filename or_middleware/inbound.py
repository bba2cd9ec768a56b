"""What our server span records of the inbound request: never a credential.

The OpenTelemetry ASGI/WSGI instrumentation we wrap captures any header the standard
``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST``/``_RESPONSE`` variables name (``.*``
takes them all) and the full URL with its query. Here, whatever those variables say:

- a credential header (``authorization``, ``cookie``, ``set-cookie``, ``x-api-key``, any name
  :func:`or_middleware.secrets.is_sensitive_name` flags) is recorded as ``[REDACTED]`` at capture
  (and dropped from every export by :class:`or_middleware.export.privacy.CredentialScrubber`);
- URL attributes (``http.url``, ``url.full``, ``http.target``, ``url.query``) and captured header
  values (a ``Referer`` or ``Location`` is a URL) lose user info and the values of sensitive query
  parameters (``?api_key=``, ``?token=``...).
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.util.http import OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS, get_custom_headers

from or_middleware.capture.call import log_once
from or_middleware.export.allowlist import is_credential_header
from or_middleware.secrets import SENSITIVE_NAME_PATTERN, safe_query, safe_url

REDACTED_HEADER = "[REDACTED]"  # the instrumentation's own word for a sanitized header
_URL_KEYS = ("http.url", "url.full", "http.target")
_HEADER_PREFIXES = ("http.request.header.", "http.response.header.")


def sanitize_fields() -> list[str]:
    """The header names the instrumentation records as ``[REDACTED]``: the user's own
    ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS`` and every credential name."""
    own = get_custom_headers(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS) \
        if os.environ.get(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS) else []
    return [*own, SENSITIVE_NAME_PATTERN]


def redact_attributes(attributes: dict[str, Any]) -> None:
    """Credentials out of a server span's attributes before the span is started with them."""
    try:
        attributes.update(_redacted(attributes))
    except Exception:
        log_once("inbound credential redaction")


def _redacted(attributes: Any) -> dict[str, Any]:
    """The attributes whose values must change, with their clean values."""
    changes: dict[str, Any] = {}
    for key in _URL_KEYS:
        value = attributes.get(key)
        if isinstance(value, str) and (clean := safe_url(value)) != value:
            changes[key] = clean
    query = attributes.get("url.query")
    if isinstance(query, str) and (clean := safe_query(query)) != query:
        changes["url.query"] = clean
    for key in [k for k in attributes if k.startswith(_HEADER_PREFIXES)]:
        if is_credential_header(key):
            if attributes[key] != (REDACTED_HEADER,):
                changes[key] = [REDACTED_HEADER]
            continue
        values = attributes[key]  # a Referer or Location is a URL that may carry ?token=
        if isinstance(values, tuple | list) and any(safe_url(str(v)) != v for v in values):
            changes[key] = [safe_url(str(v)) for v in values]
    return changes
