"""HttpTransport: one POST (or PUT) of an encoded batch, bounded in time and in what is read back.

A destination is a peer we do not control. Each attempt ends by one total deadline (its
``TIMEOUT``, or the shutdown budget if that ends first; see :mod:`export.deadline`), however
slowly the peer trickles its answer, and at most ``MAX_ANSWER_BYTES`` of the answer are read
(enough for any error message); a larger answer is cut and its connection closed. It runs on
httpcore (the engine under httpx) so the deadline reaches every socket operation, with httpx's
own TLS defaults and the standard ``HTTP(S)_PROXY`` / ``NO_PROXY`` variables as httpx reads them.
"""

from __future__ import annotations

import gzip
import os
import ssl
import urllib.request
import zlib
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import certifi
import httpcore
from google.rpc.status_pb2 import Status

from or_middleware.export.deadline import attempt_deadline, send_deadline, time_left
from or_middleware.export.transports import (
    MAX_ANSWER_BYTES,
    MAX_MESSAGE_CHARS,
    USER_AGENT,
    SendResult,
    body_message,
    describe_network_error,
    http_outcome,
    parse_retry_after,
)

_WRITE_SLICE = 64 * 1024  # a write is sliced so each slice gets the time left, not the whole timeout
_NETWORK_ERRORS = (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError,
                   httpcore.ProxyError, httpcore.UnsupportedProtocol, OSError, ssl.SSLError)


class DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, time_left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        view = memoryview(buffer)
        for start in range(0, len(view), _WRITE_SLICE):
            self._inner.write(bytes(view[start:start + _WRITE_SLICE]), time_left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname, time_left(timeout, httpcore.ConnectTimeout))
        return DeadlineStream(inner)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's own synchronous backend, with every stream bounded by the send's deadline."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(host, port, time_left(timeout, httpcore.ConnectTimeout), local_address,
                                         socket_options)
        return DeadlineStream(stream)

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        stream = self._inner.connect_unix_socket(path, time_left(timeout, httpcore.ConnectTimeout), socket_options)
        return DeadlineStream(stream)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def default_tls(verify: bool = True) -> ssl.SSLContext:
    """httpx's TLS context (``httpx.create_ssl_context(verify)``: ``SSL_CERT_FILE``, then
    ``SSL_CERT_DIR``, then certifi's bundle), without importing httpx for it."""
    if not verify:
        unverified = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        unverified.check_hostname = False
        unverified.verify_mode = ssl.CERT_NONE
        return unverified
    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    return ssl.create_default_context(cafile=certifi.where())


def answer_message(content: bytes, content_type: str) -> str:
    """The error message in a destination's answer: an OTLP/HTTP server's ``google.rpc.Status``,
    else JSON or text (:func:`body_message`)."""
    if content and "protobuf" in content_type:
        try:
            message = Status.FromString(content).message
            if message:
                return message[:MAX_MESSAGE_CHARS]
        except Exception:
            pass
    return body_message(content, content_type)


def _proxy_for(url: str) -> str | None:
    """The proxy the environment names for ``url`` (``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``)."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    if not proxies or urllib.request.proxy_bypass_environment(parts.hostname or "", proxies):
        return None
    return proxies.get(parts.scheme) or proxies.get("all")


def _pool(url: str, ssl_context: ssl.SSLContext) -> httpcore.ConnectionPool:
    backend = DeadlineBackend()
    proxy = _proxy_for(url)
    if proxy is None:
        return httpcore.ConnectionPool(ssl_context=ssl_context, max_connections=2, network_backend=backend)
    parts = urlsplit(proxy)
    auth = (unquote(parts.username or ""), unquote(parts.password or "")) if parts.username else None
    proxy_url = f"{parts.scheme}://{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
    if parts.scheme.startswith("socks"):
        return httpcore.SOCKSProxy(proxy_url=proxy_url, proxy_auth=auth, ssl_context=ssl_context,
                                   max_connections=2, network_backend=backend)
    return httpcore.HTTPProxy(proxy_url=proxy_url, proxy_auth=auth, ssl_context=ssl_context, max_connections=2,
                              network_backend=backend)


def read_capped(stream: httpcore.Response, limit: int) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of an answer; True when there was more (not read)."""
    received = bytearray()
    for chunk in stream.iter_stream():
        received += chunk
        if len(received) > limit:
            return bytes(received[:limit]), True
    return bytes(received), False


def _decoded(content: bytes, encoding: str) -> bytes:
    if encoding.strip().lower() != "gzip":
        return content
    try:  # bounded: a small gzip bomb stays small
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(content, MAX_ANSWER_BYTES)
    except zlib.error:
        return b""


class HttpTransport:
    """POST (a webhook may PUT) to one URL (keep-alive, optional gzip).

    A forked worker (gunicorn ``--preload``) gets a pool of its own: the parent's pooled
    keep-alive connections must not be shared between processes.
    """

    def __init__(self, url: str, headers: Mapping[str, str], content_type: str, timeout: float,
                 *, compress: bool = False, verify: ssl.SSLContext | bool = True, method: str = "POST") -> None:
        self.target = url
        self._method = method
        self._compress = compress
        merged = {"user-agent": USER_AGENT, **headers, "content-type": content_type}
        if compress:
            merged["content-encoding"] = "gzip"
        self._headers = list(merged.items())
        self._timeout = timeout
        self._ssl_context = verify if isinstance(verify, ssl.SSLContext) else default_tls(verify)
        self._pid = os.getpid()
        self._pool = _pool(url, self._ssl_context)

    def send(self, body: bytes) -> SendResult:
        if self._pid != os.getpid():
            self._pid, self._pool = os.getpid(), _pool(self.target, self._ssl_context)
        content = gzip.compress(body) if self._compress else body
        headers = [*self._headers, ("content-length", str(len(content)))]
        timeouts = {"connect": self._timeout, "read": self._timeout, "write": self._timeout, "pool": self._timeout}
        try:
            with send_deadline(attempt_deadline(self._timeout)), self._pool.stream(
                self._method, self.target, headers=headers, content=content, extensions={"timeout": timeouts}
            ) as response:
                answer, _ = read_capped(response, MAX_ANSWER_BYTES)
                answer_headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in response.headers}
        except _NETWORK_ERRORS as exc:
            return SendResult(False, retryable=True, reason=describe_network_error(exc, self.target))
        answer = _decoded(answer, answer_headers.get("content-encoding", ""))
        message = answer_message(answer, answer_headers.get("content-type", ""))
        return http_outcome(response.status, message, parse_retry_after(answer_headers.get("retry-after")))

    def close(self) -> None:
        self._pool.close()
