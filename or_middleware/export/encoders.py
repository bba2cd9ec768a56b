"""Span encodings for the wire: OTLP protobuf and OTLP JSON, from OpenTelemetry's own encoders.

The bytes an encoding returns are what is sent, retried and spooled, so a batch re-sent
from the spool is byte for byte the request that failed. Imports are at module level on purpose:
an import running on an exporter thread when a server forks its workers would leave the module
half-initialised in every worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from opentelemetry.exporter.otlp.json.common.trace_encoder import encode_spans as encode_json
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as encode_protobuf
from opentelemetry.sdk.trace import ReadableSpan


class SpanEncoding(Protocol):
    content_type: str

    def encode(self, spans: Sequence[ReadableSpan]) -> bytes: ...


class OtlpProtobuf:
    """``http/protobuf`` (and the request message of ``grpc``)."""

    content_type = "application/x-protobuf"

    def encode(self, spans: Sequence[ReadableSpan]) -> bytes:
        return encode_protobuf(spans).SerializeToString()


class OtlpJson:
    """``http/json``: OTLP/JSON as OpenRouter Broadcast sends it (hex ids, enums as numbers)."""

    content_type = "application/json"

    def encode(self, spans: Sequence[ReadableSpan]) -> bytes:
        return encode_json(spans).to_json().encode()
