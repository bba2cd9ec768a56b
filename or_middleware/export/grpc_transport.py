"""OTLP/gRPC transport: the same protobuf request as OTLP/HTTP, sent with grpcio.

Imported only when a gRPC destination (traces or metrics) is built, at start-up: grpcio costs
~14 MiB of memory, which a configuration without a gRPC destination never pays. A missing grpcio
stops start-up with one line (see :func:`export.destinations.transport_for`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import grpc
from google.rpc.error_details_pb2 import RetryInfo

from or_middleware.export.deadline import attempt_deadline
from or_middleware.export.transports import MAX_ANSWER_BYTES, SendResult

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
