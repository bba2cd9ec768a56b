"""PostgresStoreTransport: batches of store rows into a shared PostgreSQL store (the ``local``
destination with ``OR_MIDDLEWARE_LOCAL__URL=postgresql://...``), one attempt at a time.

It is a transport of :class:`~or_middleware.export.delivery.WireDelivery`, so a database that is
down, restarting, refusing our role or hanging gets what a remote destination gets: retries with
backoff, then the on-disk spool (rows as JSON, never the URL), re-sent oldest first when it answers.

- One transaction per batch (a huge batch: per few MB, see :meth:`RowBatch.chunks`), on the
  exporter thread. ``INSERT ... ON CONFLICT (trace_id, span_id) DO NOTHING``: a batch re-sent after
  a commit whose answer was lost adds nothing; its security rows go in only with a new generation.
  DO NOTHING updates no row, so the append-only triggers have nothing to refuse.
- psycopg-pool, sized for one exporter thread: no connection until the first batch, at most one,
  closed after ten idle minutes. A failed connection attempt is known at once (its reason kept for
  the log line and ``or-middleware check``), not after the pool's whole timeout.
- Every attempt ends by ``TIMEOUT`` or the shutdown budget, whichever comes first, however the
  server behaves: a watchdog shuts the socket of a statement that outlives it (the server also
  gets ``statement_timeout``), and the batch is spooled.
- Fork: a pool is never used across ``fork()``; a child makes its own and leaves the parent's
  connections alone (closing them would end the parent's sessions).
- The schema is created or migrated on the first connection of each process (advisory lock).
Messages never hold the URL's password (:func:`~or_middleware.store.sql.without_secrets`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import weakref
from typing import Any

import psycopg
from psycopg import errors
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from or_middleware.export.deadline import attempt_deadline, closing_by
from or_middleware.export.transports import SendResult
from or_middleware.secrets import scrub_secrets
from or_middleware.store.postgres import SchemaUnreadable, connection_kwargs, migrate, schema_version
from or_middleware.store.row_batch import RowBatch, decode_batch
from or_middleware.store.schema import SCHEMA_VERSION, NotAStoreError
from or_middleware.store.sql import display_url, without_secrets

logger = logging.getLogger(__name__)

POOL_NAME = "or_middleware-store"
MAX_TRANSACTION_BYTES = 4 * 1024 * 1024
MIGRATION_S = 900.0  # how long a schema migration may take (building indexes over a large store)
_POLL_S = 0.05  # how often a send waiting for a connection looks at the last attempt's outcome
# Worth another try later: the server or the network (OperationalError: refused, reset, shut down,
# statement_timeout...), a grant or role being fixed, a failover to a read-only standby (no lock
# there either), a deadlock.
_RETRYABLE = (psycopg.OperationalError, psycopg.InterfaceError, errors.InsufficientPrivilege,
              errors.InvalidAuthorizationSpecification, errors.UndefinedTable, errors.ReadOnlySqlTransaction,
              errors.TransactionRollback, errors.ObjectNotInPrerequisiteState, SchemaUnreadable)


# About a row, not the database: a value it cannot take (an id longer than an index entry may be, a
# character it cannot encode, a constraint). Resending cannot help; the batch's other rows go in.
_ROW_ERRORS = (psycopg.DataError, psycopg.IntegrityError, errors.ProgramLimitExceeded)
_REFUSAL_LOG_INTERVAL_S = 60.0


class _Unavailable(Exception):
    """No connection within the attempt's time (the reason is the last connection attempt's)."""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _insert(table: str, columns: tuple[str, ...], suffix: str = "") -> str:
    # column names come from the library's own list (row_batch._table), never from a file
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))}){suffix}"


def insert_rows(connection: psycopg.Connection[Any], batch: RowBatch) -> int:
    """Write ``batch`` in one transaction; the number of generations that were new."""
    generations, signals = batch.generations, batch.security_events
    with connection.transaction(), connection.cursor() as cursor:
        cursor.executemany(_insert("generations", generations.columns,
                                   " ON CONFLICT (trace_id, span_id) DO NOTHING RETURNING trace_id, span_id"),
                           generations.rows, returning=True)
        inserted: set[tuple[Any, Any]] = set()
        while True:
            inserted.update(tuple(row) for row in cursor.fetchall())
            if not cursor.nextset():
                break
        new_signals = [row for row in signals.rows if signals.key_of(row) in inserted]
        if new_signals:
            cursor.executemany(_insert("security_events", signals.columns), new_signals)
    return len(inserted)


def insert_each(connection: psycopg.Connection[Any], batch: RowBatch) -> tuple[int, list[str]]:
    """Write ``batch`` span by span in one transaction (a savepoint each), leaving out the spans the
    database refuses for their values; (generations that were new, why each refused span was)."""
    inserted, refused = 0, []
    with connection.transaction():
        for part in batch.chunks(0):  # one generation (and its signals) per part
            try:
                inserted += insert_rows(connection, part)  # nested: a savepoint
            except _ROW_ERRORS as exc:
                refused.append(describe(exc))
    return inserted, refused


def _limit(deadline: float) -> float:
    """``deadline``, or the end of the shutdown budget when shutdown began since and ends first."""
    closing = closing_by()
    return deadline if closing is None else min(deadline, closing)


class _Watchdog:
    """Ends the statement of ``connection`` once ``deadline`` (or the shutdown budget) has passed,
    by shutting its socket down: the driver then fails at once, whatever the server does."""

    def __init__(self, connection: psycopg.Connection[Any], deadline: float) -> None:
        self._connection = connection
        self._deadline = deadline
        self._done = threading.Event()
        self.fired = False
        self._thread = threading.Thread(target=self._watch, name="or_middleware-store-watchdog", daemon=True)

    def extend_to(self, deadline: float) -> None:
        self._deadline = deadline  # read by _watch at least every 0.1 s

    def __enter__(self) -> _Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._done.wait(max(0.0, min(0.1, _limit(self._deadline) - time.monotonic()))):
            if time.monotonic() >= _limit(self._deadline):
                self.fired = True
                with contextlib.suppress(Exception):
                    fd = self._connection.pgconn.socket
                    with socket.socket(fileno=os.dup(fd)) as sock:
                        sock.shutdown(socket.SHUT_RDWR)
                return


class PostgresStoreTransport:
    """Sends :class:`~or_middleware.store.row_batch.StoreRows` batches to the store at ``url``."""

    def __init__(self, url: str, *, timeout: float, reconnect_s: float = 30.0) -> None:
        self.target = display_url(url)
        self.url = url
        self.timeout = timeout
        self._reconnect_s = reconnect_s
        self._pool: ConnectionPool[Any] | None = None
        self._pool_pid = 0
        self._migrated = False
        self._failing: str | None = None  # why the last connection attempt failed; None once one succeeds
        self._failures = 0  # connection attempts that failed (a send waits for the next outcome)
        self.inserted = 0  # generations written by this process (the others were already there)
        self.refused = 0  # spans the database would not take for their values (logged, not retried)
        self._last_refusal_log = 0.0
        _transports.add(self)

    # -- Transport ------------------------------------------------------------------------------

    def send(self, body: bytes) -> SendResult:
        try:
            batch = decode_batch(body)
        except ValueError as exc:
            return SendResult(False, reason=f"unreadable batch: {exc}")
        if not batch.generations.rows:
            return SendResult(True)
        try:
            for chunk in batch.chunks(MAX_TRANSACTION_BYTES):
                self._write(chunk)
        except _Unavailable as exc:
            return SendResult(False, retryable=True, reason=self._safe(str(exc)))
        except _Timeout as exc:
            return SendResult(False, retryable=True, reason=str(exc))
        except NotAStoreError as exc:
            retryable = isinstance(exc, SchemaUnreadable)
            return SendResult(False, retryable=retryable, reason=self._safe(str(exc)))
        except psycopg.Error as exc:
            retryable = isinstance(exc, _RETRYABLE) and not isinstance(exc, _ROW_ERRORS)
            return SendResult(False, retryable=retryable, reason=self._safe(describe(exc)))
        return SendResult(True)

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None and self._pool_pid == os.getpid():
            closing = closing_by()
            left = 1.0 if closing is None else min(1.0, closing - time.monotonic())
            with contextlib.suppress(Exception):
                pool.close(timeout=max(0.0, left))

    # -- one transaction --------------------------------------------------------------------------

    def _write(self, chunk: RowBatch) -> None:
        deadline = attempt_deadline(self.timeout)
        pool = self._pool_here()
        connection = self._connection(pool, deadline)
        try:
            with _Watchdog(connection, deadline) as watchdog:
                try:
                    if not self._migrated:
                        if self._needs_migration(connection):
                            # new indexes over millions of rows take minutes, not TIMEOUT: a migration cut
                            # at TIMEOUT is rolled back and tried again for ever (the shutdown budget still holds)
                            watchdog.extend_to(time.monotonic() + MIGRATION_S)
                            migrate(connection, self.url)
                            watchdog.extend_to(attempt_deadline(self.timeout))
                        self._migrated = True
                    try:
                        self.inserted += insert_rows(connection, chunk)
                    except _ROW_ERRORS:  # some value the database cannot take: the other rows still go in
                        inserted, refused = insert_each(connection, chunk)
                        self.inserted += inserted
                        self._refused_rows(refused)
                except errors.UndefinedTable:
                    self._migrated = False  # someone dropped the tables: create them again next time
                    raise
                except (psycopg.Error, NotAStoreError):
                    if watchdog.fired:
                        raise _Timeout(f"timeout: {self.target} did not finish the batch in time") from None
                    raise
        finally:
            with contextlib.suppress(Exception):
                pool.putconn(connection)  # a broken connection is discarded by the pool

    def _needs_migration(self, connection: psycopg.Connection[Any]) -> bool:
        with connection.transaction():
            return schema_version(connection, self.url) < SCHEMA_VERSION

    def _connection(self, pool: ConnectionPool[Any], deadline: float) -> psycopg.Connection[Any]:
        """A connection from the pool; _Unavailable when none comes by ``deadline``, or as soon as
        an attempt to connect fails (so a refused connection does not cost the whole timeout)."""
        failures = self._failures
        grace = time.monotonic() + 2 * _POLL_S  # the pool may hold a good connection while another attempt failed
        while True:
            left = _limit(deadline) - time.monotonic()  # shutdown began meanwhile: its budget ends the wait
            if left <= 0:
                raise _Unavailable(self._failing or f"timeout: no connection to {self.target} in time")
            try:
                return pool.getconn(timeout=min(_POLL_S, left))
            except PoolClosed:
                raise _Unavailable(f"{self.target}: the writer is shutting down") from None
            except PoolTimeout:
                if self._failing is not None and (self._failures != failures or time.monotonic() > grace):
                    raise _Unavailable(self._failing) from None

    def _pool_here(self) -> ConnectionPool[Any]:
        """This process's pool (a forked child makes its own, see _abandon_in_child)."""
        if self._pool is None or self._pool_pid != os.getpid():
            kwargs = connection_kwargs(self.url, read_only=False, connect_timeout_s=self.timeout,
                                       application_name="or_middleware-writer")
            # the server ends a statement that runs too long too (a lock held by someone else)
            kwargs["options"] = f"{kwargs.get('options', '')} -c statement_timeout={int(self.timeout * 1000)}".strip()
            pool: ConnectionPool[Any] = ConnectionPool(
                kwargs=kwargs, connection_class=_recording_connection(weakref.ref(self)), min_size=0, max_size=1,
                open=False, name=POOL_NAME, timeout=self.timeout, max_idle=600.0,
                reconnect_timeout=self._reconnect_s, num_workers=1, reconnect_failed=_quietly)
            pool.open(wait=False)
            self._pool, self._pool_pid = pool, os.getpid()
        return self._pool

    def _refused_rows(self, reasons: list[str]) -> None:
        self.refused += len(reasons)
        now = time.monotonic()
        if reasons and (now - self._last_refusal_log >= _REFUSAL_LOG_INTERVAL_S or not self._last_refusal_log):
            self._last_refusal_log = now
            logger.error("or_middleware: local store %s refused %d row(s) for their values, the others were "
                         "written: %s (%d refused so far)", self.target, len(reasons),
                         self._safe(scrub_secrets(reasons[0][:300])), self.refused)

    def _connect_failed(self, exc: BaseException) -> None:
        self._failing = self._safe(describe(exc))
        self._failures += 1

    def _connected(self) -> None:
        self._failing = None

    def _safe(self, text: str) -> str:
        return without_secrets(text, self.url)

    def _abandon_in_child(self) -> None:
        """After fork(): the parent's pool and connections are not ours. Nothing of them is closed
        here (that would end the parent's sessions); the pool is marked closed so dropping it
        does not try to stop threads that do not exist in this process."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool._closed = True  # ConnectionPool.__del__ does nothing for a closed pool
            _left_behind.append(pool)


class _Timeout(Exception):
    pass


def _quietly(pool: Any) -> None:
    """The pool gave up reconnecting: the next batch asks again (the delivery's backoff paces it)."""


def describe(exc: BaseException) -> str:
    """A psycopg error in one line, with what it means for the writer."""
    text = _one_line(str(exc)) or type(exc).__name__
    if isinstance(exc, errors.InsufficientPrivilege):
        return f"{text}; the writer's role needs INSERT (and SELECT) on the store's tables"
    if isinstance(exc, errors.InvalidAuthorizationSpecification | errors.InvalidPassword):
        return f"auth rejected ({text})"
    if isinstance(exc, psycopg.OperationalError) and "connection" in text.lower():
        return f"connect: {text}"
    return text


def _recording_connection(transport: weakref.ref[PostgresStoreTransport]) -> type[psycopg.Connection[Any]]:
    """A Connection class that tells ``transport`` how each connection attempt of the pool went."""

    class StoreConnection(psycopg.Connection[Any]):
        @classmethod
        def connect(cls, *args: Any, **kwargs: Any) -> Any:
            owner = transport()
            try:
                connection = super().connect(*args, **kwargs)
            except Exception as exc:
                if owner is not None:
                    owner._connect_failed(exc)
                raise
            if owner is not None:
                owner._connected()
            return connection

    return StoreConnection


class _OurPoolRecords(logging.Filter):
    """psycopg's and psycopg-pool's own lines made on our threads (one per reconnection attempt
    while the database is down, a rollback that failed with the connection) are left out: the
    destination logs the outage once, with the reason, and its recovery. The app's own are kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.threadName or "").startswith(("or_middleware", POOL_NAME)) or record.levelno >= logging.ERROR


_transports: weakref.WeakSet[PostgresStoreTransport] = weakref.WeakSet()
_left_behind: list[Any] = []  # parents' pools, kept so they are never finalised in a child
for _name in ("psycopg", "psycopg.pool"):
    logging.getLogger(_name).addFilter(_OurPoolRecords())


def _abandon_pools_in_child() -> None:
    for transport in list(_transports):
        transport._abandon_in_child()


os.register_at_fork(after_in_child=_abandon_pools_in_child)
