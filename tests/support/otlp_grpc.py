"""OTLP/gRPC trace receiver on loopback, same interface as :class:`OTLPReceiver`."""

from __future__ import annotations

from concurrent import futures
from types import TracebackType
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from .otlp_spans import OTLPRequest, SpanStore, decode_proto

# HTTP fault statuses mapped to the gRPC codes an OTLP server would use (OTLP spec, "Failures").
GRPC_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT, 401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED, 404: grpc.StatusCode.UNIMPLEMENTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED, 500: grpc.StatusCode.INTERNAL,
    502: grpc.StatusCode.UNAVAILABLE, 503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, store: SpanStore) -> None:
        self.store = store

    def Export(self, request: ExportTraceServiceRequest, context: grpc.ServicerContext
               ) -> ExportTraceServiceResponse:
        headers = {k.lower(): v if isinstance(v, str) else v.hex() for k, v in context.invocation_metadata()}
        received = OTLPRequest(path="/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                               headers=headers, body=request.SerializeToString(), spans=decode_proto(request))
        status, retry_after, delay, blackhole = self.store._take_behaviour()
        self.store._record(received, accepted=status < 300 and not blackhole)
        self.store._hold(delay, blackhole)
        if status >= 300 or blackhole:
            if retry_after is not None:
                # The OTel gRPC exporter honours RetryInfo in this trailer.
                info = RetryInfo(retry_delay=Duration(seconds=int(retry_after),
                                                      nanos=int(retry_after % 1 * 1e9)))
                context.set_trailing_metadata((("google.rpc.retryinfo-bin", info.SerializeToString()),))
            code = GRPC_CODES.get(status, grpc.StatusCode.UNKNOWN)
            context.abort(grpc.StatusCode.UNAVAILABLE if blackhole else code, f"fault status {status}")
        return ExportTraceServiceResponse()


class OTLPGrpcReceiver(SpanStore):
    """OTLP/gRPC on 127.0.0.1 (free port); ``url`` is ``http://127.0.0.1:PORT`` (plaintext),
    ``endpoint`` is ``127.0.0.1:PORT``. ``respond(status=...)`` uses HTTP numbers, mapped to gRPC codes."""

    def __init__(self, **behaviour: Any) -> None:
        super().__init__(**behaviour)
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(self), self._server)
        port = self._server.add_insecure_port("127.0.0.1:0")
        self.endpoint = f"127.0.0.1:{port}"
        self.url = f"http://{self.endpoint}"

    def __enter__(self) -> OTLPGrpcReceiver:
        self._server.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._released.set()
        self._server.stop(grace=1).wait(5)
