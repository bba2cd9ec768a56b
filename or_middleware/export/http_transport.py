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
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

import httpcore
import httpx

from or_middleware.export.deadline import DeadlineBackend, attempt_deadline, send_deadline
from or_middleware.export.transports import (
    MAX_ANSWER_BYTES,
    USER_AGENT,
    SendResult,
    body_message,
    describe_network_error,
    http_outcome,
    parse_retry_after,
)

_NETWORK_ERRORS = (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError,
                   httpcore.ProxyError, httpcore.UnsupportedProtocol, OSError, ssl.SSLError)


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
        self._ssl_context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify=verify)
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
        message = body_message(answer, answer_headers.get("content-type", ""))
        return http_outcome(response.status, message, parse_retry_after(answer_headers.get("retry-after")))

    def close(self) -> None:
        self._pool.close()
