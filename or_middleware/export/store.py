"""LocalStoreExporter: GenAI spans as rows of an append-only SQLite table (the `local` destination)."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import StatusCode

from or_middleware import spans as contract

_SCHEMA = """
CREATE TABLE IF NOT EXISTS generations (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  time_unix_nano INTEGER NOT NULL,
  trace_id TEXT NOT NULL,
  span_id TEXT NOT NULL,
  parent_span_id TEXT,
  name TEXT NOT NULL,
  status TEXT NOT NULL,
  duration_ms REAL NOT NULL,
  attributes TEXT NOT NULL
)
"""


class LocalStoreExporter(SpanExporter):
    def __init__(self, path: str) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlite3.connect(self._path, timeout=30, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(_SCHEMA)
            self._connection = connection
        return self._connection

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        rows = []
        for span in spans:
            if span.instrumentation_scope is None or span.instrumentation_scope.name != contract.GENAI_SCOPE:
                continue
            rows.append(
                (
                    span.start_time or 0,
                    f"{span.context.trace_id:032x}",
                    f"{span.context.span_id:016x}",
                    f"{span.parent.span_id:016x}" if span.parent else None,
                    span.name,
                    "error" if span.status.status_code is StatusCode.ERROR else "ok",
                    ((span.end_time or 0) - (span.start_time or 0)) / 1e6,
                    json.dumps(dict(span.attributes or {}), default=list),
                )
            )
        if not rows:
            return SpanExportResult.SUCCESS
        with self._lock:
            connection = self._connect()
            with connection:
                connection.executemany(
                    "INSERT INTO generations (time_unix_nano, trace_id, span_id, parent_span_id, name,"
                    " status, duration_ms, attributes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
