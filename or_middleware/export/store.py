"""LocalStoreExporter: GenAI spans as rows of an append-only SQLite table (the `local` destination).

One row per GenAI span in ``generations``, one per security signal in ``security_events``.
Written on the destination's exporter thread, one transaction per batch; never on the
request path. Several processes (gunicorn workers) may write the same file: WAL mode lets
readers and one writer work at once, writers wait for each other (busy timeout) and a batch
that still finds the file locked is retried with backoff, so no row is lost to contention.

Append-only: this module only INSERTs (a trigger refuses UPDATE); retention is the explicit
``or-middleware prune``. The file is created readable by its owner only (it may hold user
ids, and prompts when this destination's privacy mode is off).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes import error_attributes
from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE
from opentelemetry.trace import StatusCode

from or_middleware import spans as contract
from or_middleware.export.privacy import ORIGINAL_PARENT
from or_middleware.security.events import EVENT_PREFIX, evidence_of

logger = logging.getLogger(__name__)

# Each migration moves the file from version N-1 to N (``PRAGMA user_version``). Migrations only
# add (tables, columns, indexes), so an older library can still append to a newer file.
MIGRATIONS: tuple[str, ...] = (
    # 1: the generations table
    """
    CREATE TABLE generations (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      time_unix_nano INTEGER NOT NULL,  -- start of the call
      trace_id TEXT NOT NULL,
      span_id TEXT NOT NULL,
      parent_span_id TEXT,
      service TEXT,
      route TEXT,                       -- trace.name: "METHOD /path" of the request, or the app's own name
      operation TEXT,
      user_id TEXT,
      session_id TEXT,
      request_model TEXT,
      response_model TEXT,
      provider TEXT,                    -- the API called
      upstream_provider TEXT,           -- who served it (OpenRouter's provider)
      input_tokens INTEGER,             -- includes cached input tokens
      output_tokens INTEGER,            -- includes reasoning tokens
      cached_tokens INTEGER,
      cache_creation_tokens INTEGER,
      reasoning_tokens INTEGER,
      total_tokens INTEGER,
      cost_usd REAL,
      cost_source TEXT,                 -- provider | price_table
      duration_s REAL NOT NULL,
      ttfc_s REAL,                      -- time to first chunk (streams)
      stream INTEGER NOT NULL DEFAULT 0,
      status TEXT NOT NULL,             -- ok | error
      error_type TEXT,
      http_status INTEGER,
      finish_reason TEXT,               -- comma-separated when several choices
      response_id TEXT,
      prompt_sha256 TEXT,
      metadata TEXT,                    -- JSON object: the request's custom trace metadata
      system_instructions TEXT,         -- content columns: NULL when this destination's privacy mode is on
      input_messages TEXT,
      output_messages TEXT,
      tool_definitions TEXT,
      error_message TEXT
    );
    CREATE INDEX generations_time ON generations (time_unix_nano);
    CREATE INDEX generations_user_time ON generations (user_id, time_unix_nano);
    CREATE INDEX generations_prompt ON generations (prompt_sha256);
    CREATE INDEX generations_trace ON generations (trace_id);
    CREATE TRIGGER generations_append_only BEFORE UPDATE ON generations
      BEGIN SELECT RAISE(ABORT, 'generations is append-only'); END;
    """,
    # 2: security signals, one row per span event or_middleware.security.<kind>
    """
    CREATE TABLE security_events (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      time_unix_nano INTEGER NOT NULL,
      trace_id TEXT NOT NULL,
      span_id TEXT NOT NULL,
      kind TEXT NOT NULL,
      user_id TEXT,
      route TEXT,
      model TEXT,
      evidence TEXT NOT NULL            -- JSON object
    );
    CREATE INDEX security_events_time ON security_events (time_unix_nano);
    CREATE TRIGGER security_events_append_only BEFORE UPDATE ON security_events
      BEGIN SELECT RAISE(ABORT, 'security_events is append-only'); END;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

GENERATION_COLUMNS = (
    "time_unix_nano", "trace_id", "span_id", "parent_span_id", "service", "route", "operation",
    "user_id", "session_id", "request_model", "response_model", "provider", "upstream_provider",
    "input_tokens", "output_tokens", "cached_tokens", "cache_creation_tokens", "reasoning_tokens",
    "total_tokens", "cost_usd", "cost_source", "duration_s", "ttfc_s", "stream", "status", "error_type",
    "http_status", "finish_reason", "response_id", "prompt_sha256", "metadata",
    "system_instructions", "input_messages", "output_messages", "tool_definitions", "error_message",
)
SECURITY_COLUMNS = ("time_unix_nano", "trace_id", "span_id", "kind", "user_id", "route", "model", "evidence")

_INSERT_GENERATION = (
    f"INSERT INTO generations ({', '.join(GENERATION_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(GENERATION_COLUMNS))})"
)
_INSERT_SECURITY = (
    f"INSERT INTO security_events ({', '.join(SECURITY_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(SECURITY_COLUMNS))})"
)
# trace.metadata.* keys that are ours, already in their own columns, not the app's metadata
_NOT_METADATA = frozenset({contract.SERVED_BY, contract.FIRST_TOKEN_MS})
_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_WARN_INTERVAL_S = 30.0


class StoreVersionError(RuntimeError):
    """The file was written by a newer or_middleware whose schema this version cannot read."""


def is_busy(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in _BUSY_CODES or "locked" in str(exc)


def _create_private(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def _migrate(connection: sqlite3.Connection) -> None:
    """Bring the file to SCHEMA_VERSION; one process at a time (BEGIN IMMEDIATE), the others see it done."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            _set_aside_unversioned(connection)
        for number in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _statements(MIGRATIONS[number - 1]):
                connection.execute(statement)
        if version < SCHEMA_VERSION:
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def _statements(script: str) -> Iterator[str]:
    """A migration script split into statements (triggers keep their inner ``;``)."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                yield buffer.strip()
            buffer = ""


def _set_aside_unversioned(connection: sqlite3.Connection) -> None:
    # Pre-release builds wrote an unversioned `generations` table of another shape: keep its rows.
    found = connection.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='generations'").fetchone()
    if found:
        connection.execute("ALTER TABLE generations RENAME TO generations_unversioned")


def open_store(path: str | os.PathLike[str], *, busy_timeout_ms: int = 5000, create: bool = True) -> sqlite3.Connection:
    """A connection to the store at ``path``, migrated to the current schema.

    Autocommit mode (``isolation_level=None``): callers open their own transactions.
    """
    file = Path(path)
    if create:
        _create_private(file)
    elif not file.exists():
        raise FileNotFoundError(f"no store at {file} (is the `local` destination writing elsewhere?)")
    connection = sqlite3.connect(file, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False)
    try:
        connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        if connection.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
            logger.warning("or_middleware: %s is not in WAL mode; concurrent readers may wait", file)
        connection.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across app crashes
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version < SCHEMA_VERSION:
            _migrate(connection)
        elif version > SCHEMA_VERSION:
            logger.info("or_middleware: %s has schema %d (this version knows %d)", file, version, SCHEMA_VERSION)
    except BaseException:
        connection.close()
        raise
    return connection


# -- span -> rows -------------------------------------------------------------------------------


def _hex_span_id(span_id: int) -> str:
    return f"{span_id:016x}"


def _joined(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return ",".join(str(item) for item in value)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _metadata(attributes: Mapping[str, Any]) -> str | None:
    prefix = contract.TRACE_METADATA_PREFIX
    custom = {
        key[len(prefix):]: value
        for key, value in attributes.items()
        if key.startswith(prefix) and key not in _NOT_METADATA
    }
    return json.dumps(custom, ensure_ascii=False, sort_keys=True) if custom else None


def generation_row(span: ReadableSpan) -> tuple[Any, ...]:
    a = span.attributes or {}
    start, end = span.start_time or 0, span.end_time or span.start_time or 0
    failed = span.status.status_code is StatusCode.ERROR or a.get(error_attributes.ERROR_TYPE) is not None
    values: dict[str, Any] = {
        "time_unix_nano": start,
        "trace_id": f"{span.context.trace_id:032x}",
        "span_id": _hex_span_id(span.context.span_id),
        # SPANS=genai destinations get GenAI spans detached from their (unsent) server span; keep its id.
        "parent_span_id": _hex_span_id(span.parent.span_id) if span.parent else a.get(ORIGINAL_PARENT),
        "service": span.resource.attributes.get("service.name") if span.resource else None,
        "route": a.get(contract.TRACE_NAME),
        "operation": a.get(gen_ai.GEN_AI_OPERATION_NAME),
        "user_id": a.get(contract.USER_ID),
        "session_id": a.get(contract.SESSION_ID),
        "request_model": a.get(gen_ai.GEN_AI_REQUEST_MODEL),
        "response_model": a.get(gen_ai.GEN_AI_RESPONSE_MODEL),
        "provider": a.get(gen_ai.GEN_AI_PROVIDER_NAME),
        "upstream_provider": a.get(contract.SERVED_BY),
        "input_tokens": _int(a.get(gen_ai.GEN_AI_USAGE_INPUT_TOKENS)),
        "output_tokens": _int(a.get(gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS)),
        "cached_tokens": _int(a.get(gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)),
        "cache_creation_tokens": _int(a.get(gen_ai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS)),
        "reasoning_tokens": _int(a.get(gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS)),
        "total_tokens": _int(a.get(contract.USAGE_TOTAL_TOKENS)),
        "cost_usd": _float(a.get(contract.USAGE_COST)),
        "cost_source": a.get(contract.COST_SOURCE),
        "duration_s": max(0, end - start) / 1e9,
        "ttfc_s": _float(a.get(gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)),
        "stream": 1 if a.get(gen_ai.GEN_AI_REQUEST_STREAM) else 0,
        "status": "error" if failed else "ok",
        "error_type": a.get(error_attributes.ERROR_TYPE),
        "http_status": _int(a.get(HTTP_RESPONSE_STATUS_CODE)),
        "finish_reason": _joined(a.get(gen_ai.GEN_AI_RESPONSE_FINISH_REASONS)),
        "response_id": a.get(gen_ai.GEN_AI_RESPONSE_ID),
        "prompt_sha256": a.get(contract.PROMPT_SHA256),
        "metadata": _metadata(a),
        # Content reaches this exporter only when this destination's privacy mode is off.
        "system_instructions": a.get(gen_ai.GEN_AI_SYSTEM_INSTRUCTIONS),
        "input_messages": a.get(gen_ai.GEN_AI_INPUT_MESSAGES),
        "output_messages": a.get(gen_ai.GEN_AI_OUTPUT_MESSAGES),
        "tool_definitions": a.get(gen_ai.GEN_AI_TOOL_DEFINITIONS),
        "error_message": a.get(contract.ERROR_MESSAGE),
    }
    return tuple(values[column] for column in GENERATION_COLUMNS)


def security_rows(span: ReadableSpan) -> list[tuple[Any, ...]]:
    a = span.attributes or {}
    rows = []
    for event in span.events:
        if not event.name.startswith(EVENT_PREFIX):
            continue
        evidence = evidence_of(dict(event.attributes or {}))
        rows.append((
            event.timestamp or span.end_time or 0,
            f"{span.context.trace_id:032x}",
            _hex_span_id(span.context.span_id),
            event.name[len(EVENT_PREFIX):],
            a.get(contract.USER_ID),
            a.get(contract.TRACE_NAME),
            a.get(gen_ai.GEN_AI_REQUEST_MODEL),
            json.dumps(evidence, ensure_ascii=False, sort_keys=True, default=list),
        ))
    return rows


# -- the exporter -------------------------------------------------------------------------------


class LocalStoreExporter(SpanExporter):
    def __init__(self, path: str, *, busy_timeout_ms: int = 5000, write_retry_s: float = 60.0) -> None:
        self.path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._write_retry_s = write_retry_s
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._connection_pid = 0
        self._last_warning = 0.0
        self.retries = 0  # batches that met a locked file and were tried again
        _open_exporters.add(self)

    def _close_before_fork(self) -> None:
        """No SQLite connection may cross a fork: SQLite's per-process lock bookkeeping would come
        along, and a child's own connection would then skip locks it does not really hold (rows
        of concurrent writers overwrite each other). Closed here; reopened on the next write."""
        self._lock.acquire()  # a batch being written finishes first
        if self._connection is not None and self._connection_pid == os.getpid():
            with contextlib.suppress(sqlite3.Error):
                self._connection.close()
        self._connection = None

    def _reinit_in_child(self) -> None:
        self._lock = threading.Lock()  # the parent's was held across the fork (above)
        self._connection = None

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None or self._connection_pid != os.getpid():
            # After a fork the parent's connection is not ours to use (or close): open our own.
            self._connection = open_store(self.path, busy_timeout_ms=self._busy_timeout_ms)
            self._connection_pid = os.getpid()
        return self._connection

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        genai = [s for s in spans if s.instrumentation_scope and s.instrumentation_scope.name == contract.GENAI_SCOPE]
        if not genai:
            return SpanExportResult.SUCCESS
        generations = [generation_row(span) for span in genai]
        signals = [row for span in genai for row in security_rows(span)]
        try:
            with self._lock:
                self._write(generations, signals)
        except (sqlite3.Error, OSError, ValueError) as exc:  # ValueError: a value SQLite cannot take
            self._warn(exc, len(generations))
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def _write(self, generations: list[tuple[Any, ...]], signals: list[tuple[Any, ...]]) -> None:
        deadline = time.monotonic() + self._write_retry_s
        backoff = 0.05
        while True:
            try:
                connection = self._connect()
                connection.execute("BEGIN IMMEDIATE")
                try:
                    connection.executemany(_INSERT_GENERATION, generations)
                    if signals:
                        connection.executemany(_INSERT_SECURITY, signals)
                    connection.execute("COMMIT")
                except BaseException:
                    if connection.in_transaction:
                        connection.execute("ROLLBACK")
                    raise
                return
            except sqlite3.OperationalError as exc:
                if not is_busy(exc) or time.monotonic() + backoff > deadline:
                    raise
                self.retries += 1
                time.sleep(backoff * (0.5 + random.random()))  # jitter: writers do not retry in step
                backoff = min(backoff * 2, 1.0)

    def _warn(self, exc: BaseException, rows: int) -> None:
        now = time.monotonic()
        if now - self._last_warning > _WARN_INTERVAL_S:
            self._last_warning = now
            logger.warning("or_middleware: local store %s could not write %d row(s): %s", self.path, rows, exc)

    def shutdown(self) -> None:
        with self._lock:
            if self._connection is not None and self._connection_pid == os.getpid():
                self._connection.close()
            self._connection = None


_open_exporters: weakref.WeakSet[LocalStoreExporter] = weakref.WeakSet()
_forking: list[LocalStoreExporter] = []


def _before_fork() -> None:
    _forking[:] = list(_open_exporters)
    for exporter in _forking:
        exporter._close_before_fork()


def _after_fork_in_parent() -> None:
    for exporter in _forking:
        exporter._lock.release()
    _forking.clear()


def _after_fork_in_child() -> None:
    for exporter in {*_forking, *_open_exporters}:
        exporter._reinit_in_child()
    _forking.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)
