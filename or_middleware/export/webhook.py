"""The ``webhook`` destination: each batch as OTLP/JSON in an HTTPS POST (or PUT) to any URL.

The shape of OpenRouter Broadcast's webhook
(https://openrouter.ai/docs/guides/features/broadcast/webhook): ``application/json`` OTLP, the
user's own headers (a JSON object, or OTel's ``k=v,k2=v2``), 2xx is success. Retries, backoff and
the disk spool are every remote destination's. Plain ``http://`` only to this machine (loopback):
batches carry user ids and, with privacy off, prompts.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import TYPE_CHECKING, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import SecretStr, model_validator

from or_middleware.config import (
    ConfigError,
    RemoteDestination,
    SpanScope,
    parse_headers,
    register_preset,
    shown_url,
)
from or_middleware.export.wire import WireTarget, secret, timeout_of

if TYPE_CHECKING:
    from or_middleware.config import Settings


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP header name (RFC 9110 token)


def _checked(headers: dict[str, str]) -> dict[str, str]:
    """Refused at start-up, not at every send: a name that is no token, a value with a control
    character (a CR/LF would split the request)."""
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name) or any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in value):
            raise ValueError("a header name must be a token and a value must hold no control character")
    return headers


def parse_webhook_headers(value: str | None) -> dict[str, str]:
    """A JSON object of strings (Broadcast's form) or ``k=v`` pairs (OTel's form)."""
    return _checked(_parse_webhook_headers(value))


def _parse_webhook_headers(value: str | None) -> dict[str, str]:
    text = (value or "").strip()
    if not text.startswith("{"):
        try:
            return parse_headers(text)
        except ValueError:  # its message would quote the value, and header values are secrets
            raise ValueError("expected a JSON object or key=value pairs separated by commas") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise ValueError("expected a JSON object or key=value pairs separated by commas (not valid JSON)") from None
    pairs = data.items() if isinstance(data, dict) else [(None, None)]
    if not all(isinstance(k, str) and k.strip() and isinstance(v, str) for k, v in pairs):
        raise ValueError('expected a JSON object of header names to string values, e.g. {"Authorization": "Bearer t"}')
    return {k.strip().lower(): v for k, v in data.items()}


def _is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


class WebhookDestination(RemoteDestination):
    """Any HTTPS endpoint taking OTLP/JSON batches, with the user's headers."""

    kind: ClassVar[str] = "webhook"
    default_spans: ClassVar[SpanScope] = "all"
    required: ClassVar[tuple[str, ...]] = ("url",)
    url_fields: ClassVar[tuple[str, ...]] = ("url",)

    url: str | None = None
    method: Literal["POST", "PUT"] = "POST"
    headers: SecretStr | None = None  # often carry a token: never shown

    @model_validator(mode="after")
    def _valid_webhook(self) -> WebhookDestination:
        parts = urlsplit(self.url or "")
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise ConfigError(f"{self.env_name('url')}{shown_url(self.url)}: must be an https:// URL "
                              "(plain http:// only to localhost)")
        try:
            parse_webhook_headers(secret(self.headers))
        except ValueError as exc:
            raise ConfigError(f"{self.env_name('headers')}: {exc}") from None
        return self


def webhook_target(dest: WebhookDestination, settings: Settings) -> WireTarget:
    headers = parse_webhook_headers(secret(dest.headers))
    return WireTarget(dest.url or "", "http/json", headers, timeout=timeout_of(dest), method=dest.method)


register_preset(WebhookDestination)
VENDOR_TARGETS = {"webhook": webhook_target}  # export/destinations.py finds the target here
