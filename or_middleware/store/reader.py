"""StoreReader: the store opened read-only, on SQLite or PostgreSQL, with the queries the report and the UI use.

    from or_middleware.store import Filters, open_store_reader

    with open_store_reader("./or_traces.db") as store:          # or "postgresql://ui@db-host/llm"
        overall = store.totals(Filters(since_unix_nano=...))     # requests, errors, tokens, cost, p50/p95/p99
        by_model = store.grouped("model")                        # any report --by dimension, metadata.KEY too
        page = store.generations(limit=50)                       # newest first; filters, sort, offset
        rows = store.query("SELECT kind, COUNT(*) AS n FROM security_events GROUP BY kind")

The database is never written: SQLite files are opened with ``mode=ro`` (and ``query_only``),
PostgreSQL sessions with ``default_transaction_read_only``. A database that is not an or_middleware
store is refused with :class:`NotAStoreError` before anything else is read. One reader may be used
from several threads (queries take turns on its one connection); open one per thread for parallelism.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from or_middleware.store import aggregates, listing
from or_middleware.store.filters import EVERYTHING, Filters
from or_middleware.store.percentiles import expression as percentile_expression
from or_middleware.store.percentiles import register as register_percentiles
from or_middleware.store.schema import SCHEMA_VERSION, NotAStoreError
from or_middleware.store.sql import Engine, display_url, for_engine, is_postgres_url

Row = tuple[Any, ...]


class StoreError(RuntimeError):
    """The database could not be opened or queried (the message never holds a password)."""


class StoreReader:
    """A read-only view of one store. Build it with :func:`open_store_reader`."""

    def __init__(self, connection: Any, engine: Engine, db: str, version: int) -> None:
        self._connection = connection
        self.engine: Engine = engine
        self.display_name = display_url(db)  # the path, or the URL without its password
        self.schema_version = version
        self.has_security_events = version >= 2
        self._lock = threading.Lock()
        self._registered: set[tuple[int, ...]] = set()  # percentile aggregates given to a SQLite connection

    # -- raw queries --------------------------------------------------------------------------

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Rows of ``sql``, written with ``?`` placeholders (translated for the engine)."""
        rows, _ = self._run(sql, params)
        return rows

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows of ``sql`` as dicts keyed by column name."""
        rows, names = self._run(sql, params)
        return [dict(zip(names, row, strict=True)) for row in rows]

    def _run(self, sql: str, params: Sequence[Any]) -> tuple[list[Row], list[str]]:
        with self._lock:
            if self.engine == "sqlite":
                cursor = self._connection.execute(sql, tuple(params))
                rows = cursor.fetchall()
            else:
                # PostgreSQL text cannot hold NUL (a DataError, the UI's 500): the writer stores it as U+FFFD
                values = tuple(p.replace("\x00", "\ufffd") if isinstance(p, str) else p for p in params)
                cursor = self._connection.execute(for_engine(sql, "postgresql"), values)
                rows = [tuple(row) for row in cursor.fetchall()] if cursor.description else []
            names = [column[0] for column in cursor.description or ()]
        return rows, names

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Queries inside see the same rows: one read transaction (PostgreSQL: REPEATABLE READ), so
        a count and the ranks walked to after it agree while writers append. Inside the caller's own
        transaction (a bare SQLite connection handed to report.figures), that one serves."""
        if self._in_transaction():
            yield
            return
        self.execute("BEGIN" if self.engine == "sqlite" else "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        try:
            yield
        finally:
            self.execute("COMMIT")

    def _in_transaction(self) -> bool:
        if self.engine == "sqlite":
            return bool(self._connection.in_transaction)
        from psycopg.pq import TransactionStatus

        return self._connection.info.transaction_status != TransactionStatus.IDLE

    def binary_order(self, expression: str) -> str:
        """``expression`` compared byte by byte (the same order on both engines, whatever the locale)."""
        return expression if self.engine == "sqlite" else f'{expression} COLLATE "C"'

    def percentiles(self, column: str, points: Sequence[int]) -> str:
        """SQL of an aggregate giving the percentiles ``points`` of ``column`` per group, read back with
        :func:`or_middleware.store.percentiles.decode` (how they are computed: that module)."""
        if self.engine == "sqlite" and tuple(points) not in self._registered:
            with self._lock:
                register_percentiles(self._connection, points)
                self._registered.add(tuple(points))
        return percentile_expression(self.engine, column, points)

    # -- figures (see aggregates.py) ----------------------------------------------------------

    def totals(self, filters: Filters = EVERYTHING, *, percentiles: bool = True) -> aggregates.Totals:
        """Requests, errors, tokens, cost, latency p50/p95/p99 and TTFC p50/p95 of the selected calls."""
        return aggregates.totals(self, filters, percentiles=percentiles)

    def grouped(self, by: str, filters: Filters = EVERYTHING, **options: Any) -> list[aggregates.Totals]:
        """:class:`Totals` per value of ``by``; options ``order``, ``limit``, ``offset``, ``percentiles``."""
        return aggregates.grouped(self, by, filters, **options)

    def series(self, bucket_s: float, filters: Filters = EVERYTHING, **options: Any) -> list[aggregates.Bucket]:
        """:class:`Totals` per time bucket (for charts); option ``by`` splits each bucket by a dimension."""
        return aggregates.series(self, bucket_s, filters, **options)

    # -- rows (see listing.py) ----------------------------------------------------------------

    def generations(self, filters: Filters = EVERYTHING, **options: Any) -> listing.Page:
        """A page of generations (no content columns); options ``sort``, ``descending``, ``limit``, ``offset``."""
        return listing.generations(self, filters, **options)

    def generation(self, generation_id: int) -> dict[str, Any] | None:
        """Every column of one generation (content only when stored), with its security events."""
        return listing.generation(self, generation_id)

    def trace(self, trace_id: str) -> list[dict[str, Any]]:
        """The generations of one trace (one request), in the order they started."""
        return listing.trace(self, trace_id)

    def session(self, session_id: str, *, limit: int = 1000) -> list[dict[str, Any]]:
        """The generations of one session, oldest first, content columns included."""
        return listing.session(self, session_id, limit=limit)

    def security_events(self, filters: Filters = EVERYTHING, **options: Any) -> listing.Page:
        """A page of security signals, newest first, each with the id of the generation that raised it."""
        return listing.security_events(self, filters, **options)

    def security_summary(self, filters: Filters = EVERYTHING, *, top_users: int = 5) -> listing.SecuritySummary:
        """Signals by kind (count, distinct users) and the most flagged users."""
        return listing.security_summary(self, filters, top_users=top_users)

    def security_series(self, bucket_s: float, filters: Filters = EVERYTHING) -> list[tuple[int, str, int]]:
        """``(bucket start, kind, signals)`` per time bucket of ``bucket_s`` seconds."""
        return listing.security_series(self, bucket_s, filters)

    def latest_generation_id(self) -> int:
        """The id of the newest generation (0 when none): pass it to :meth:`generations_after`."""
        return listing.latest_generation_id(self)

    def generations_after(self, generation_id: int, *, limit: int = 1000) -> list[dict[str, Any]]:
        """Generations written after ``generation_id``, oldest first (``tail``, the UI's live view)."""
        return listing.generations_after(self, generation_id, limit=limit)

    # -- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def __enter__(self) -> StoreReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store_reader(db: str, *, busy_timeout_ms: int = 5000, connect_timeout_s: float = 10.0) -> StoreReader:
    """Open the store ``db`` read-only: a SQLite path or a ``postgresql://user@host/db`` URL.

    Raises FileNotFoundError (no such file), :class:`NotAStoreError` (a database that is not an
    or_middleware store: refused, nothing changed) or :class:`StoreError` (cannot connect or read).
    """
    if is_postgres_url(db):
        from or_middleware.store.postgres import open_postgres_readonly

        connection, version = open_postgres_readonly(db, connect_timeout_s=connect_timeout_s)
        return StoreReader(connection, "postgresql", db, version)
    from or_middleware.store.locations import looks_like_conninfo
    from or_middleware.store.sqlite import open_readonly

    if looks_like_conninfo(db):  # not a file to wait for (tail) or to name in a message (its password)
        raise StoreError(f"{display_url(db)} is a libpq key=value string: write it as a URL, "
                         "postgresql://user:password@host:port/dbname")
    try:
        connection, version = open_readonly(db, busy_timeout_ms=busy_timeout_ms)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read {db}: {exc}") from None
    return StoreReader(connection, "sqlite", db, version)


__all__ = ["SCHEMA_VERSION", "NotAStoreError", "StoreError", "StoreReader", "open_store_reader"]
