"""OTLP trace receivers on loopback: HTTP (protobuf and JSON, optionally gzip) and gRPC.

    with OTLPReceiver() as rx:                       # rx.url == "http://127.0.0.1:PORT"
        ...export to rx.url + "/v1/traces"...
        [span] = rx.wait_for_spans(lambda s: s.name.startswith("chat"))
    rx.respond(status=429, retry_after=1, times=1)    # fault tests; also delay=, blackhole=True
"""

from __future__ import annotations

import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from .otlp_grpc import OTLPGrpcReceiver
from .otlp_spans import OTLPRequest, ReceivedSpan, SpanStore, attributes, decode_json, decode_proto

__all__ = ["OTLPGrpcReceiver", "OTLPReceiver", "OTLPRequest", "ReceivedSpan"]


def decode_logs(content_type: str, encoding: str, body: bytes) -> list[dict[str, Any]]:
    """An OTLP/HTTP protobuf logs request as dicts: event_name, attributes, trace_id, span_id, resource."""
    data = gzip.decompress(body) if encoding == "gzip" else body
    if not content_type.startswith("application/x-protobuf"):
        raise ValueError(f"unsupported content-type {content_type!r} for logs")
    records = []
    for resource_logs in ExportLogsServiceRequest.FromString(data).resource_logs:
        resource = attributes(resource_logs.resource.attributes)
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                records.append({"event_name": record.event_name, "attributes": attributes(record.attributes),
                                "trace_id": record.trace_id.hex(), "span_id": record.span_id.hex(),
                                "severity": record.severity_text, "resource": resource,
                                "scope": scope_logs.scope.name})
    return records


def decode_http(content_type: str, encoding: str, body: bytes) -> list[ReceivedSpan]:
    data = gzip.decompress(body) if encoding == "gzip" else body
    if content_type.startswith("application/json"):
        return decode_json(data)
    if content_type.startswith("application/x-protobuf"):
        return decode_proto(ExportTraceServiceRequest.FromString(data))
    raise ValueError(f"unsupported content-type {content_type!r}")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as the OTLP exporters' sessions expect

    def do_POST(self) -> None:
        store = self.server.store
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        request = OTLPRequest(path=self.path, headers=headers, body=body, method=self.command)
        content_type = headers.get("content-type", "")
        try:
            if self.path.rstrip("/").endswith("/v1/logs"):
                request.logs = decode_logs(content_type, headers.get("content-encoding", ""), body)
            else:
                request.spans = decode_http(content_type, headers.get("content-encoding", ""), body)
        except Exception as exc:  # any decode failure is a finding for the test, not a crash
            request.error = f"{type(exc).__name__}: {exc}"
        status, retry_after, delay, blackhole = store._take_behaviour()
        if request.error and status < 300:
            status = 400
        verdict = store.judge(request) if status < 300 else None  # a vendor's own checks (vendor_receiver.py)
        if verdict is not None:
            status, request.error = verdict
        store._record(request, accepted=status < 300 and not blackhole)
        store._hold(delay, blackhole)
        if blackhole:
            self.close_connection = True
            return
        is_json = content_type.startswith("application/json")
        if status < 300:
            payload = b"{}" if is_json else ExportTraceServiceResponse().SerializeToString()
        else:
            payload = (request.error or f"fault status {status}").encode()
        self.send_response(status)
        self.send_header("content-type", "application/json" if is_json else "application/x-protobuf")
        if retry_after is not None:
            self.send_header("retry-after", str(int(retry_after)))
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_PUT = do_POST  # the webhook destination may PUT

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output quiet


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    store: SpanStore


class OTLPReceiver(SpanStore):
    """An OTLP/HTTP receiver on 127.0.0.1 (free port) accepting POST on any path."""

    def __init__(self, **behaviour: Any) -> None:
        super().__init__(**behaviour)
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.store = self
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.traces_url = self.url + "/v1/traces"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def judge(self, request: OTLPRequest) -> tuple[int, str] | None:
        """(status, message) to refuse a request a real intake would refuse; None: accept."""
        return None

    def __enter__(self) -> OTLPReceiver:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._released.set()
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
