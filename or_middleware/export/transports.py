"""Transports: one encoded batch to one destination, one attempt, and a precise outcome.

Only the standard library is imported here: the transports themselves (:mod:`export.http_transport`
on httpcore, :mod:`export.grpc_transport` on grpcio) are imported when a destination that needs one
is built, at start-up on the thread that builds the middleware. Never on an exporter thread (a fork
during an import would leave the module half-initialised in the child), and never by a
configuration that has no such destination.

An attempt ends in a :class:`SendResult`: delivered, worth retrying (unreachable, timeout,
408/429/5xx, gRPC UNAVAILABLE...; with the server's ``Retry-After`` when it gave one), or
refused (auth, bad request). ``reason`` says why in the words ``or-middleware check`` prints:
DNS, connect, TLS, timeout, auth rejected, HTTP status with the body's message.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import socket
import ssl
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from or_middleware.version import __version__

USER_AGENT = f"or-middleware/{__version__}"
RETRYABLE_HTTP = frozenset({408, 429}) | frozenset(range(500, 600))
MAX_MESSAGE_CHARS = 300
MAX_ANSWER_BYTES = 64 * 1024  # read of a destination's answer: enough for any error message


@dataclass(frozen=True)
class SendResult:
    delivered: bool
    retryable: bool = False
    reason: str = ""
    status: int | None = None
    retry_after: float | None = None  # seconds the destination asked us to wait


class Transport(Protocol):
    target: str  # what it sends to, for messages

    def send(self, body: bytes) -> SendResult: ...

    def close(self) -> None: ...


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def body_message(content: bytes, content_type: str) -> str:
    """The error message a destination put in its answer (JSON or text; an OTLP/HTTP server's
    protobuf ``google.rpc.Status`` is read by :mod:`export.http_transport` before this)."""
    if not content:
        return ""
    try:
        data = json.loads(content)
    except ValueError:
        try:
            text = content.decode()
        except UnicodeDecodeError:
            return ""
        words = " ".join(text.split())
        return words[:MAX_MESSAGE_CHARS] if words.isprintable() else ""
    for key in ("message", "error", "detail", "error_description"):
        value = data.get(key) if isinstance(data, dict) else None
        if isinstance(value, dict):
            value = value.get("message") or json.dumps(value)
        if value:
            return str(value)[:MAX_MESSAGE_CHARS]
    return json.dumps(data)[:MAX_MESSAGE_CHARS]


def _causes(exc: BaseException) -> list[BaseException]:
    chain = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _named(exc: BaseException, *names: str) -> bool:
    """``exc`` is an httpx / httpcore exception of one of these class names (checked by name, so
    neither library is imported to tell; a destination that did not load them cannot raise them)."""
    return any(cls.__name__ in names and cls.__module__.split(".")[0] in ("httpx", "httpcore")
               for cls in type(exc).__mro__)


def describe_network_error(exc: BaseException, target: str) -> str:
    """DNS, connect, TLS or timeout, with the host, in one line."""
    host = urlsplit(target).netloc or target
    chain = _causes(exc)
    text = " | ".join(str(e) for e in chain)
    if any(isinstance(e, socket.gaierror) for e in chain) or "Name or service not known" in text \
            or "nodename nor servname" in text or "getaddrinfo" in text:
        return f"DNS: cannot resolve {urlsplit(target).hostname or host}"
    if any(isinstance(e, ssl.SSLError) for e in chain) or "SSL" in text or "CERTIFICATE" in text:
        detail = next((str(e) for e in chain if isinstance(e, ssl.SSLError)), str(exc))
        return f"TLS: handshake with {host} failed ({detail})"
    if any(isinstance(e, TimeoutError) or _named(e, "TimeoutException") for e in chain):
        return f"timeout: {host} did not answer in time"
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "Connection refused" in text:
        return f"connect: connection refused by {host}"
    if _named(exc, "ConnectError"):
        return f"connect: cannot reach {host} ({exc})"
    return f"network: {type(exc).__name__}: {exc}"


def http_outcome(status: int, message: str, retry_after: float | None) -> SendResult:
    if 200 <= status < 300:
        return SendResult(True, status=status)
    detail = f"HTTP {status}" + (f": {message}" if message else "")
    if status in (401, 403):
        return SendResult(False, reason=f"auth rejected ({detail})", status=status)
    return SendResult(False, retryable=status in RETRYABLE_HTTP, reason=detail, status=status,
                      retry_after=retry_after)


def ssl_context(certificate: str | None, client_cert: str | None = None,
                client_key: str | None = None) -> ssl.SSLContext | bool:
    if not (certificate or client_cert):
        return True
    context = ssl.create_default_context(cafile=certificate)
    if client_cert:
        context.load_cert_chain(client_cert, client_key)
    return context
