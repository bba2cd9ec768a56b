"""Decoded OTLP spans and the shared store/fault settings of the OTLP test receivers."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status


@dataclass
class ReceivedSpan:
    name: str
    trace_id: str  # 32 hex
    span_id: str  # 16 hex
    parent_span_id: str | None
    kind: str  # "INTERNAL" | "SERVER" | "CLIENT" | "PRODUCER" | "CONSUMER" | "UNSPECIFIED"
    attributes: dict[str, Any]
    status_code: str  # "UNSET" | "OK" | "ERROR"
    status_message: str
    events: list[dict[str, Any]]  # {"name", "time_unix_nano", "attributes"}
    resource: dict[str, Any]
    scope: str
    start_time_unix_nano: int = 0
    end_time_unix_nano: int = 0
    links: list[dict[str, Any]] = field(default_factory=list)  # {"trace_id", "span_id", "attributes"}

    @property
    def duration_s(self) -> float:
        return (self.end_time_unix_nano - self.start_time_unix_nano) / 1e9


@dataclass
class OTLPRequest:
    """One export request as it arrived (also failed and unanswered ones)."""

    path: str
    headers: dict[str, str]  # names lower-cased (gRPC: the call metadata)
    body: bytes  # as sent (still gzip-compressed if it was)
    spans: list[ReceivedSpan] = field(default_factory=list)
    error: str | None = None  # why decoding failed, if it did
    method: str = "POST"
    logs: list[dict[str, Any]] = field(default_factory=list)  # OTLP log records (a /v1/logs request)


def any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    return getattr(value, kind)


def attributes(pairs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in pairs:
        assert isinstance(kv, KeyValue)
        out[kv.key] = any_value(kv.value)
    return out


def decode_proto(request: ExportTraceServiceRequest) -> list[ReceivedSpan]:
    spans: list[ReceivedSpan] = []
    for rs in request.resource_spans:
        resource = attributes(rs.resource.attributes)
        for ss in rs.scope_spans:
            for s in ss.spans:
                spans.append(ReceivedSpan(
                    name=s.name, trace_id=s.trace_id.hex(), span_id=s.span_id.hex(),
                    parent_span_id=s.parent_span_id.hex() or None,
                    kind=Span.SpanKind.Name(s.kind).removeprefix("SPAN_KIND_"),
                    attributes=attributes(s.attributes),
                    status_code=Status.StatusCode.Name(s.status.code).removeprefix("STATUS_CODE_"),
                    status_message=s.status.message,
                    events=[{"name": e.name, "time_unix_nano": e.time_unix_nano,
                             "attributes": attributes(e.attributes)} for e in s.events],
                    resource=resource, scope=ss.scope.name,
                    start_time_unix_nano=s.start_time_unix_nano, end_time_unix_nano=s.end_time_unix_nano,
                    links=[{"trace_id": link.trace_id.hex(), "span_id": link.span_id.hex(),
                            "attributes": attributes(link.attributes)} for link in s.links]))
    return spans


_ID_KEYS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def _hex_ids_to_base64(node: Any) -> Any:
    # OTLP/JSON writes ids as hex, protobuf's JSON mapping expects base64 for bytes fields.
    if isinstance(node, dict):
        return {k: (base64.b64encode(bytes.fromhex(v)).decode() if k in _ID_KEYS and isinstance(v, str)
                    else _hex_ids_to_base64(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_hex_ids_to_base64(v) for v in node]
    return node


def decode_json(body: bytes) -> list[ReceivedSpan]:
    """OTLP/JSON, strictly: unknown fields or non-hex ids raise (so exporter bugs surface)."""
    message = ExportTraceServiceRequest()
    json_format.ParseDict(_hex_ids_to_base64(json.loads(body)), message)
    return decode_proto(message)


class SpanStore:
    """Recorded requests and spans, waiting, and the configurable answer for fault tests.

    Spans are added only from requests answered with success, so an exporter's retries of a
    refused batch do not show up twice.
    """

    def __init__(self, *, status: int = 200, retry_after: float | None = None, delay: float = 0.0,
                 blackhole: bool = False) -> None:
        self.requests: list[OTLPRequest] = []
        self.spans: list[ReceivedSpan] = []
        self._cond = threading.Condition()
        self._released = threading.Event()  # set on close: unblocks blackholed handlers
        self.respond(status=status, retry_after=retry_after, delay=delay, blackhole=blackhole)

    def respond(self, *, status: int = 200, retry_after: float | None = None, delay: float = 0.0,
                blackhole: bool = False, times: int | None = None) -> None:
        """How to answer the next requests; ``times=N`` applies it to N requests, then back to 200."""
        with self._cond:
            self.status, self.retry_after, self.delay, self.blackhole = status, retry_after, delay, blackhole
            self._times = times

    def _take_behaviour(self) -> tuple[int, float | None, float, bool]:
        with self._cond:
            behaviour = (self.status, self.retry_after, self.delay, self.blackhole)
            if self._times is not None:
                self._times -= 1
                if self._times <= 0:
                    self.status, self.retry_after, self.delay, self.blackhole = 200, None, 0.0, False
                    self._times = None
            return behaviour

    def _record(self, request: OTLPRequest, accepted: bool) -> None:
        with self._cond:
            self.requests.append(request)
            if accepted:
                self.spans.extend(request.spans)
            self._cond.notify_all()

    def _hold(self, delay: float, blackhole: bool) -> None:
        if blackhole:
            self._released.wait()
        elif delay:
            self._released.wait(delay)

    def clear(self) -> None:
        with self._cond:
            self.requests.clear()
            self.spans.clear()

    def wait_for_spans(self, predicate: Callable[[ReceivedSpan], bool] | None = None, count: int = 1,
                       timeout: float = 10.0) -> list[ReceivedSpan]:
        """The received spans matching ``predicate``, once there are at least ``count`` of them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [s for s in self.spans if predicate is None or predicate(s)]
                left = deadline - time.monotonic()
                if len(found) >= count or left <= 0:
                    break
                self._cond.wait(left)
        if len(found) < count:
            names = [s.name for s in self.spans]
            raise AssertionError(f"wanted {count} matching span(s), got {len(found)}; all spans: {names}; "
                                 f"requests: {len(self.requests)}, errors: "
                                 f"{[r.error for r in self.requests if r.error]}")
        return found

    def wait_for_requests(self, count: int = 1, timeout: float = 10.0) -> list[OTLPRequest]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.requests) < count and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            if len(self.requests) < count:
                raise AssertionError(f"wanted {count} request(s), got {len(self.requests)}")
            return list(self.requests)
