"""Transports: one encoded batch to one destination, one attempt, and a precise outcome.

Everything is imported at module level: nothing may be imported on an exporter thread (a fork
during an import leaves the module half-initialised in the child).

An attempt ends in a :class:`SendResult`: delivered, worth retrying (unreachable, timeout,
408/429/5xx, gRPC UNAVAILABLE...; with the server's ``Retry-After`` when it gave one), or
refused (auth, bad request). ``reason`` says why in the words ``or-middleware check`` prints:
DNS, connect, TLS, timeout, auth rejected, HTTP status with the body's message.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import os
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import grpc
import httpcore
import httpx
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status

from or_middleware.export.deadline import attempt_deadline
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
    """The error message a destination put in its answer (JSON, OTLP Status, or text)."""
    if not content:
        return ""
    if "protobuf" in content_type:
        try:  # OTLP/HTTP servers answer a google.rpc.Status
            message = Status.FromString(content).message
            if message:
                return message[:MAX_MESSAGE_CHARS]
        except Exception:
            pass
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
    if any(isinstance(e, httpx.TimeoutException | httpcore.TimeoutException | TimeoutError) for e in chain):
        return f"timeout: {host} did not answer in time"
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "Connection refused" in text:
        return f"connect: connection refused by {host}"
    if isinstance(exc, httpx.ConnectError | httpcore.ConnectError):
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


_GRPC_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
GRPC_METRICS_METHOD = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"


class GrpcTransport:
    """OTLP/gRPC: the same protobuf request, sent with grpcio (plaintext for http://, TLS for https://)."""

    def __init__(self, endpoint: str, headers: Mapping[str, str], timeout: float, *,
                 compress: bool = False, insecure: bool | None = None, certificate: str | None = None,
                 rpc: str = _GRPC_METHOD) -> None:
        parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
        self._rpc = rpc
        self.target = endpoint
        self._address = parts.netloc
        self._timeout = timeout
        self._metadata = tuple((k.lower(), v) for k, v in headers.items())
        self._compression = grpc.Compression.Gzip if compress else None
        self._plaintext = insecure if insecure is not None else parts.scheme == "http"
        self._root_certificates = Path(certificate).read_bytes() if certificate else None
        self._open()

    def _open(self) -> None:
        self._pid = os.getpid()
        options = [("grpc.max_receive_message_length", MAX_ANSWER_BYTES)]  # an answer is small; a huge one is refused
        if self._plaintext:
            self._channel = grpc.insecure_channel(self._address, options=options)
        else:
            credentials = grpc.ssl_channel_credentials(self._root_certificates)
            self._channel = grpc.secure_channel(self._address, credentials, options=options)
        self._export = self._channel.unary_unary(self._rpc)

    def send(self, body: bytes) -> SendResult:
        if self._pid != os.getpid():  # a forked worker: the parent's channel is not usable here
            self._open()
        left = attempt_deadline(self._timeout) - time.monotonic()  # a gRPC deadline is one total bound
        if left <= 0:
            return SendResult(False, retryable=True, reason=f"timeout: shutdown budget spent ({self.target})")
        try:
            self._export(body, timeout=left, metadata=self._metadata, compression=self._compression)
        except grpc.RpcError as exc:
            return grpc_outcome(exc, self.target)
        return SendResult(True)

    def close(self) -> None:
        self._channel.close()


def grpc_outcome(exc: object, target: str) -> SendResult:
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN  # type: ignore[attr-defined]
    details = exc.details() if hasattr(exc, "details") else str(exc)  # type: ignore[attr-defined]
    retry_after = None
    trailing = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None  # type: ignore[attr-defined]
    for key, value in trailing or ():
        if key == "google.rpc.retryinfo-bin":
            delay = RetryInfo.FromString(value).retry_delay
            retry_after = delay.seconds + delay.nanos / 1e9
    detail = f"gRPC {code.name}" + (f": {details}" if details else "")
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return SendResult(False, reason=f"auth rejected ({detail})")
    retryable = code in (
        grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED, grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    )
    if code is grpc.StatusCode.UNAVAILABLE and details:
        lowered = details.lower()
        if "dns" in lowered or "resolve" in lowered:
            detail = f"DNS: cannot resolve {target} ({details})"
        elif "connection refused" in lowered or "failed to connect" in lowered:
            detail = f"connect: cannot reach {target} ({details})"
        elif "ssl" in lowered or "handshake" in lowered:
            detail = f"TLS: handshake with {target} failed ({details})"
    return SendResult(False, retryable=retryable, reason=detail, retry_after=retry_after)
