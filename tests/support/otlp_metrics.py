"""An OTLP/HTTP receiver for traces *and* metrics on one port, as a collector or Grafana's gateway is.

    with OTLPMetricsReceiver() as rx:                # traces: rx.traces_url, metrics: rx.metrics_url
        ...
        usage = rx.wait_for_metric("gen_ai.client.token.usage")
        assert usage.unit == "{token}" and usage.points[0].explicit_bounds[:3] == [1, 4, 16]

POSTs to a path ending in ``/v1/metrics`` are decoded as ExportMetricsServiceRequest (protobuf
or JSON); every other POST is handled exactly as :class:`OTLPReceiver` does (traces).
:class:`OTLPGrpcMetricsReceiver` is the same over gRPC (TraceService and MetricsService).
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from .otlp_grpc import OTLPGrpcReceiver
from .otlp_receiver import OTLPReceiver, _Handler
from .otlp_spans import attributes


@dataclass
class ReceivedPoint:
    attributes: dict[str, Any]
    value: float | None = None  # sums and gauges
    count: int | None = None  # histograms
    sum: float | None = None
    bucket_counts: list[int] = field(default_factory=list)
    explicit_bounds: list[float] = field(default_factory=list)


@dataclass
class ReceivedMetric:
    name: str
    unit: str
    description: str
    kind: str  # "histogram" | "sum" | "gauge" | ...
    temporality: str  # "CUMULATIVE" | "DELTA" | ""
    monotonic: bool | None
    points: list[ReceivedPoint]
    resource: dict[str, Any]
    scope: str
    path: str  # the request path it arrived on
    headers: dict[str, str]

    def points_where(self, **attrs: Any) -> list[ReceivedPoint]:
        """Points whose attributes include every ``key=value`` given (dots spelled as ``__``)."""
        wanted = {key.replace("__", "."): value for key, value in attrs.items()}
        return [p for p in self.points if all(p.attributes.get(k) == v for k, v in wanted.items())]


def _temporality(value: int) -> str:
    return AggregationTemporality.Name(value).removeprefix("AGGREGATION_TEMPORALITY_").replace("UNSPECIFIED", "")


def decode_metrics(request: ExportMetricsServiceRequest, path: str, headers: dict[str, str]) -> list[ReceivedMetric]:
    found: list[ReceivedMetric] = []
    for rm in request.resource_metrics:
        resource = attributes(rm.resource.attributes)
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind = m.WhichOneof("data") or ""
                data = getattr(m, kind) if kind else None
                points: list[ReceivedPoint] = []
                temporality, monotonic = "", None
                if kind == "histogram":
                    temporality = _temporality(data.aggregation_temporality)
                    points = [ReceivedPoint(attributes(p.attributes), count=p.count, sum=p.sum,
                                            bucket_counts=list(p.bucket_counts),
                                            explicit_bounds=list(p.explicit_bounds)) for p in data.data_points]
                elif kind in ("sum", "gauge"):
                    if kind == "sum":
                        temporality = _temporality(data.aggregation_temporality)
                        monotonic = data.is_monotonic
                    points = [ReceivedPoint(attributes(p.attributes),
                                            value=p.as_double if p.WhichOneof("value") == "as_double" else p.as_int)
                              for p in data.data_points]
                found.append(ReceivedMetric(m.name, m.unit, m.description, kind, temporality, monotonic, points,
                                            resource, sm.scope.name, path, headers))
    return found


class _TracesAndMetricsHandler(_Handler):
    server: Any

    def do_POST(self) -> None:
        if not self.path.rstrip("/").endswith("/v1/metrics"):
            super().do_POST()
            return
        receiver: MetricStore = self.server.store
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        if headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        is_json = headers.get("content-type", "").startswith("application/json")
        try:
            if is_json:
                message = json_format.ParseDict(json.loads(body), ExportMetricsServiceRequest())
            else:
                message = ExportMetricsServiceRequest.FromString(body)
            receiver._record_metrics(decode_metrics(message, self.path, headers))
            status, payload = 200, b"{}" if is_json else ExportMetricsServiceResponse().SerializeToString()
        except Exception as exc:  # a decode failure is a finding for the test
            receiver.metric_errors.append(f"{type(exc).__name__}: {exc}")
            status, payload = 400, str(exc).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json" if is_json else "application/x-protobuf")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class MetricStore:
    """Received metric exports (each one a snapshot; newest last) and waiting for them."""

    def _init_metrics(self) -> None:
        self.metric_exports: list[list[ReceivedMetric]] = []
        self.metric_errors: list[str] = []
        self._metrics_cond = threading.Condition()

    def _record_metrics(self, metrics: list[ReceivedMetric]) -> None:
        with self._metrics_cond:
            self.metric_exports.append(metrics)
            self._metrics_cond.notify_all()

    def latest(self, name: str) -> ReceivedMetric | None:
        """The newest export of metric ``name`` (cumulative metrics: the running totals)."""
        with self._metrics_cond:
            for export in reversed(self.metric_exports):
                for metric in export:
                    if metric.name == name:
                        return metric
        return None

    def wait_for_metric(self, name: str, predicate: Callable[[ReceivedMetric], bool] | None = None,
                        timeout: float = 10.0) -> ReceivedMetric:
        deadline = time.monotonic() + timeout
        with self._metrics_cond:
            while True:
                metric = self.latest(name)
                if metric is not None and (predicate is None or predicate(metric)):
                    return metric
                left = deadline - time.monotonic()
                if left <= 0:
                    names = sorted({m.name for export in self.metric_exports for m in export})
                    raise AssertionError(f"no matching {name!r}; received {names}; errors {self.metric_errors}")
                self._metrics_cond.wait(left)


class OTLPMetricsReceiver(OTLPReceiver, MetricStore):
    """:class:`OTLPReceiver` that also takes ``/v1/metrics``."""

    def __init__(self, **behaviour: Any) -> None:
        super().__init__(**behaviour)
        self._init_metrics()
        self._server.RequestHandlerClass = _TracesAndMetricsHandler
        self.metrics_url = self.url + "/v1/metrics"


class _MetricsService(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, store: MetricStore) -> None:
        self.store = store

    def Export(self, request: ExportMetricsServiceRequest, context: grpc.ServicerContext
               ) -> ExportMetricsServiceResponse:
        headers = {k.lower(): v if isinstance(v, str) else v.hex() for k, v in context.invocation_metadata()}
        path = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
        self.store._record_metrics(decode_metrics(request, path, headers))
        return ExportMetricsServiceResponse()


class OTLPGrpcMetricsReceiver(OTLPGrpcReceiver, MetricStore):
    """:class:`OTLPGrpcReceiver` that also serves the OTLP MetricsService."""

    def __init__(self, **behaviour: Any) -> None:
        super().__init__(**behaviour)
        self._init_metrics()
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_MetricsService(self), self._server)
