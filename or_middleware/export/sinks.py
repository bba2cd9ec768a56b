"""SpanSink: where a destination's prepared spans go. In-process exporters (console, local
store) are wrapped in :class:`ExporterSink`; remote destinations use ``WireDelivery``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from or_middleware.export.stats import PipelineStats
from or_middleware.export.transports import SendResult


class SpanSink(Protocol):
    def deliver(self, spans: Sequence[ReadableSpan]) -> None: ...

    def due_in(self) -> float | None: ...

    def tick(self) -> None: ...

    def probe(self, spans: Sequence[ReadableSpan]) -> SendResult: ...

    def pending_spans(self) -> int: ...

    def after_fork(self) -> None: ...

    def close(self) -> None: ...


class ExporterSink:
    """An OpenTelemetry SpanExporter that runs in-process (no network, so nothing to spool)."""

    def __init__(self, exporter: SpanExporter, stats: PipelineStats) -> None:
        self.exporter = exporter
        self._stats = stats

    def deliver(self, spans: Sequence[ReadableSpan]) -> None:
        if self.exporter.export(spans) is SpanExportResult.SUCCESS:
            self._stats.add(exported=len(spans))
        else:
            self._stats.add(failed=len(spans))

    def due_in(self) -> float | None:
        # An exporter that holds spans for a while (the console's per-request trees) says when
        # it needs a tick, so the pipeline wakes for it even when no new batch comes.
        due_in = getattr(self.exporter, "due_in", None)
        return due_in() if due_in is not None else None

    def tick(self) -> None:
        tick = getattr(self.exporter, "tick", None)
        if tick is not None:
            tick()

    def probe(self, spans: Sequence[ReadableSpan]) -> SendResult:
        return SendResult(True, reason="in-process")

    def pending_spans(self) -> int:
        return 0

    def after_fork(self) -> None:
        return None

    def close(self) -> None:
        self.exporter.shutdown()
