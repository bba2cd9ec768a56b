"""GenAI spans made to measure (exact times and usage) through the real span contract, and store helpers."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode

from or_middleware.genai.record import GenerationRecord
from or_middleware.spans import GENAI_SCOPE, record_attributes, span_name

NOW_S = 1_800_000_000.0  # a fixed "now" (2027-01-15) for rows made to measure


def genai_span(
    *,
    start_s: float = NOW_S,
    duration_s: float = 1.0,
    events: Sequence[Event] = (),
    service: str = "shop",
    **record: Any,
) -> ReadableSpan:
    """A finished GenAI span whose attributes come from ``GenerationRecord(**record)``."""
    record.setdefault("provider", "openrouter")
    generation = GenerationRecord(**record)
    attributes = record_attributes(generation, 65536)
    context = SpanContext(random.getrandbits(128), random.getrandbits(64), is_remote=False)
    start = int(start_s * 1e9)
    return ReadableSpan(
        name=span_name(generation.operation, generation.request_model),
        context=context,
        parent=None,
        resource=Resource({"service.name": service}),
        attributes=attributes,
        events=list(events),
        kind=SpanKind.CLIENT,
        status=Status(StatusCode.ERROR, generation.error_type) if generation.error_type else Status(StatusCode.UNSET),
        start_time=start,
        end_time=start + int(duration_s * 1e9),
        instrumentation_scope=InstrumentationScope(GENAI_SCOPE),
    )


def rows(path: str, sql: str = "SELECT * FROM generations ORDER BY id", params: Sequence[Any] = ()) -> list[dict]:
    connection = sqlite3.connect(path)
    connection.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in connection.execute(sql, params)]
    finally:
        connection.close()


def sqlite_store(path: Any, spans: Sequence[ReadableSpan]) -> str:
    """A SQLite store at ``path`` holding ``spans``, written by the local destination's exporter; its path."""
    from or_middleware.store.sqlite_writer import LocalStoreExporter

    exporter = LocalStoreExporter(str(path))
    try:
        assert exporter.export(spans).name == "SUCCESS"
    finally:
        exporter.shutdown()
    return str(path)
