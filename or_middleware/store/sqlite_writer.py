"""LocalStoreExporter: GenAI spans as rows of the append-only SQLite store (the `local` destination).

One row per GenAI span in ``generations``, one per security signal in ``security_events``.
Written on the destination's exporter thread, one transaction per batch; never on the request
path. Several processes (gunicorn workers) may write the same file: WAL mode lets readers and
one writer work at once. A writer that finds the file locked waits for it (polling, like SQLite's
own busy handler, up to ``busy_timeout_ms``) and then retries the batch with backoff for up to
``write_retry_s``, so no row is lost to contention.

Waiting never holds anything a fork needs: each attempt runs with SQLite's busy timeout at 0 and
holds this exporter's lock only while it runs, so ``os.fork()`` in the app waits at most for one
attempt's statements, never for another process's lock or our backoff.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from or_middleware.store.rows import generation_row, is_genai, security_rows
from or_middleware.store.schema import GENERATION_COLUMNS, SECURITY_COLUMNS, NotAStoreError
from or_middleware.store.sqlite import is_busy, open_store

logger = logging.getLogger(__name__)

INSERT_GENERATION = (
    f"INSERT INTO generations ({', '.join(GENERATION_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(GENERATION_COLUMNS))})"
)
INSERT_SECURITY = (
    f"INSERT INTO security_events ({', '.join(SECURITY_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(SECURITY_COLUMNS))})"
)
_WARN_INTERVAL_S = 30.0
_FIRST_POLL_S = 0.001  # then doubling to _MAX_POLL_S while within the busy timeout
_MAX_POLL_S = 0.1


class LocalStoreExporter(SpanExporter):
    def __init__(self, path: str, *, busy_timeout_ms: int = 5000, write_retry_s: float = 60.0) -> None:
        self.path = path
        self._busy_timeout_s = busy_timeout_ms / 1000
        self._write_retry_s = write_retry_s
        self._lock = threading.Lock()  # held for one attempt at a time, never while waiting
        self._stopping = threading.Event()
        self._connection: sqlite3.Connection | None = None
        self._connection_pid = 0
        self._last_warning = 0.0
        self.retries = 0  # backoff waits after the busy timeout (the file stayed locked)
        _open_exporters.add(self)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        genai = [span for span in spans if is_genai(span)]
        if not genai:
            return SpanExportResult.SUCCESS
        generations = [generation_row(span) for span in genai]
        signals = [row for span in genai for row in security_rows(span)]
        try:
            self._write(generations, signals)
        except (sqlite3.Error, OSError, ValueError, NotAStoreError) as exc:  # ValueError: a value SQLite cannot take
            self._warn(exc, len(generations))
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def _write(self, generations: list[tuple[Any, ...]], signals: list[tuple[Any, ...]]) -> None:
        started = time.monotonic()
        deadline = started + self._busy_timeout_s + self._write_retry_s
        poll, backoff = _FIRST_POLL_S, 0.05
        while True:
            try:
                with self._lock:
                    self._attempt(generations, signals)
                return
            except sqlite3.OperationalError as exc:
                if not is_busy(exc) or self._stopping.is_set():
                    raise
                now = time.monotonic()
                if now - started < self._busy_timeout_s:  # SQLite's busy handler, outside any lock of ours
                    wait, poll = poll, min(poll * 2, _MAX_POLL_S)
                else:
                    self.retries += 1
                    wait, backoff = backoff * (0.5 + random.random()), min(backoff * 2, 1.0)  # jitter
                if now + wait > deadline:
                    raise
                self._stopping.wait(wait)

    def _attempt(self, generations: list[tuple[Any, ...]], signals: list[tuple[Any, ...]]) -> None:
        if self._connection is None or self._connection_pid != os.getpid():
            # After a fork the parent's connection is not ours to use (or close): open our own.
            # Busy timeout 0: a locked file answers at once, and _write decides how long to wait.
            self._connection = open_store(self.path, busy_timeout_ms=0)
            self._connection_pid = os.getpid()
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany(INSERT_GENERATION, generations)
            if signals:
                connection.executemany(INSERT_SECURITY, signals)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def _warn(self, exc: BaseException, rows: int) -> None:
        now = time.monotonic()
        if now - self._last_warning > _WARN_INTERVAL_S or not self._last_warning:
            self._last_warning = now
            logger.warning("or_middleware: local store %s could not write %d row(s): %s", self.path, rows, exc)

    def shutdown(self) -> None:
        self._stopping.set()
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._connection is not None and self._connection_pid == os.getpid():
            with contextlib.suppress(sqlite3.Error):
                self._connection.close()
        self._connection = None

    # -- fork -----------------------------------------------------------------------------------

    def _close_before_fork(self) -> None:
        """No SQLite connection may cross a fork: SQLite's per-process lock bookkeeping would come
        along, and a child's own connection would then skip locks it does not really hold (rows
        of concurrent writers overwrite each other). Closed here, reopened on the next attempt.
        The lock is only ever held by one running attempt (statements, no waiting)."""
        self._lock.acquire()
        self._close()

    def _reinit_in_child(self) -> None:
        self._lock = threading.Lock()  # the parent's was held across the fork (above)
        self._stopping = threading.Event()
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
