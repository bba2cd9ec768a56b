"""WireMetricExporter: GenAI metrics sent with the destinations' own transports, failures logged as ours.

The OpenTelemetry SDK's OTLP metric exporters retry on their own, log "Transient error ...
retrying" under their logger for every attempt, read a collector's answer whole and know nothing
of the shutdown budget. This exporter sends the same OTLP protobuf through our transports
(bounded answer, one deadline per attempt, the shutdown budget, credentials kept out of messages)
and does not retry: the metrics are cumulative, so the next export carries the totals. A failure
is logged once per outage, naming or_middleware and the destination, and once when it answers again.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData

from or_middleware.export import otlp_env
from or_middleware.export.transports import SendResult, Transport

logger = logging.getLogger(__name__)

DEFAULT_HTTP = "http://localhost:4318"
DEFAULT_GRPC = "http://localhost:4317"


def env_metrics_endpoint(protocol: str) -> str:
    """The standard variables' metrics URL (``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT``, else the generic one)."""
    specific = (os.environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") or "").strip()
    if specific:
        return specific
    base = (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "").strip()
    if protocol == "grpc":
        return base or DEFAULT_GRPC
    return f"{(base or DEFAULT_HTTP).rstrip('/')}/v1/metrics"


def metrics_transport(name: str, protocol: str, endpoint: str | None, headers: dict[str, str] | None,
                      timeout: float) -> Transport:
    from or_middleware.export.destinations import grpc_transport_class, wire_transport
    from or_middleware.export.wire import WireTarget

    url = endpoint or env_metrics_endpoint(protocol)
    target = WireTarget(url, "grpc" if protocol == "grpc" else "http/protobuf", dict(headers or otlp_env.headers()),
                        timeout=timeout, compress=otlp_env.compression() == "gzip",
                        certificate=otlp_env.certificate(), client_certificate=otlp_env.client_certificate())
    if protocol == "grpc":  # the metrics service, not the traces one, on the same endpoint
        transport_class = grpc_transport_class()  # grpcio is imported only for a gRPC destination
        from or_middleware.export.grpc_transport import GRPC_METRICS_METHOD

        grpc_transport = transport_class(url, target.headers, timeout, compress=target.compress,
                                         certificate=target.certificate, rpc=GRPC_METRICS_METHOD)
        return _credential_safe(grpc_transport, target)
    return wire_transport(target, None, "application/x-protobuf")  # type: ignore[arg-type]


def _credential_safe(transport: Transport, target: Any) -> Transport:
    from or_middleware.export.credentials import CredentialSafeTransport
    from or_middleware.secrets import credential_values

    return CredentialSafeTransport(transport, credential_values(target.url, target.headers))


class WireMetricExporter(MetricExporter):
    def __init__(self, destination: str, transport: Transport) -> None:
        super().__init__()  # cumulative temporality, the SDK's default aggregations
        self.destination = destination
        self.transport = transport
        self._down_reason: str | None = None
        self._bug_logged = False

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        try:
            result = self.transport.send(encode_metrics(metrics_data).SerializeToString())
        except Exception:
            if not self._bug_logged:
                self._bug_logged = True
                logger.exception("or_middleware: destination %s: metrics export failed (logged once)",
                                 self.destination)
            return MetricExportResult.FAILURE
        return self._outcome(result)

    def _outcome(self, result: SendResult) -> MetricExportResult:
        if result.delivered:
            if self._down_reason is not None:
                logger.warning("or_middleware: destination %s takes metrics again", self.destination)
                self._down_reason = None
            return MetricExportResult.SUCCESS
        if self._down_reason is None:
            logger.warning(
                "or_middleware: destination %s (%s) is not taking metrics: %s; exports are dropped until it "
                "answers (they are cumulative: the next one carries the totals; logged once per outage)",
                self.destination, self.transport.target, result.reason,
            )
        self._down_reason = result.reason
        return MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.transport.close()
