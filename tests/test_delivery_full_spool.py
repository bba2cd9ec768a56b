"""A destination that is down with its spool full drops batches without encoding them (issue 15 P4).

During a long outage every batch would be encoded only to be dropped, CPU taken from the app for
nothing. Real pieces: OpenTelemetry SDK spans, the OTLP protobuf encoder (counted), the HTTP
transport against a port nobody listens on, and the disk spool.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from or_middleware.export.delivery import WireDelivery
from or_middleware.export.encoders import OtlpProtobuf
from or_middleware.export.http_transport import HttpTransport
from or_middleware.export.spool import DiskSpool
from or_middleware.export.stats import DropCounter, PipelineStats


class CountingProtobuf(OtlpProtobuf):
    def __init__(self) -> None:
        self.encoded = 0

    def encode(self, spans: Sequence[ReadableSpan]) -> bytes:
        self.encoded += 1
        return super().encode(spans)


class Collect(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def batches(n: int) -> list[list[ReadableSpan]]:
    collect = Collect()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(collect))
    tracer = provider.get_tracer("test")
    for i in range(n):
        with tracer.start_as_current_span(f"span {i}") as span:
            span.set_attribute("payload", "x" * 200)
    return [[span] for span in collect.spans]


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1/traces"  # nothing listens: connection refused at once


def test_a_down_destination_with_a_full_spool_drops_without_encoding(tmp_path: Path) -> None:
    stats = PipelineStats()
    spool = DiskSpool(tmp_path / "spool", max_bytes=2000)  # room for a few one-span batches
    encoding = CountingProtobuf()
    delivery = WireDelivery("down", encoding, HttpTransport(closed_port_url(), {}, encoding.content_type, 2.0),
                            stats=stats, on_drop=DropCounter("down", stats), spool=spool, max_retries=0)
    work = batches(20)
    for batch in work[:10]:
        delivery.deliver(batch)
    assert stats.spooled >= 1 and stats.dropped >= 1  # the spool filled up, then batches were dropped
    encoded = encoding.encoded
    for batch in work[10:15]:
        delivery.deliver(batch)
    assert encoding.encoded == encoded  # dropped while the spool is full: never encoded
    assert stats.dropped + stats.spooled == 15

    while (claimed := spool.claim_oldest()) is not None:  # the spool is emptied (another process re-sent it)
        spool.done(claimed)
    spooled = stats.spooled
    delivery.deliver(work[15])
    assert encoding.encoded == encoded + 1 and stats.spooled == spooled + 1  # room again: encoded and kept
    delivery.close()
