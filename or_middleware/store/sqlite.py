"""The SQLite engine: a store file opened to write (created and migrated) or to read (read-only, never changed).

A writer checks the file is ours before it changes anything: a file with another application's
tables is refused untouched (no table renamed, no WAL switch, no ``user_version`` set). A reader
opens the file with ``mode=ro`` and ``query_only``, so a read command cannot write to it at all.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from pathlib import Path

from or_middleware.store.schema import (
    SCHEMA_VERSION,
    SQLITE_MIGRATIONS,
    NotAStoreError,
    check_tables,
)

logger = logging.getLogger(__name__)

_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


def is_busy(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in _BUSY_CODES or "locked" in str(exc)


def _create_private(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def _tables(connection: sqlite3.Connection) -> dict[str, set[str]]:
    names = [row[0] for row in connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'")]
    return {name: {row[1] for row in connection.execute("SELECT * FROM pragma_table_info(?)", (name,))}
            for name in names}


def check_file(connection: sqlite3.Connection, where: str, *, writing: bool) -> int:
    """The file's schema version, after checking its tables are ours (NotAStoreError otherwise).

    Version 0 is a file with no tables at all (new, or empty): a writer may create the schema in it,
    a reader has nothing to read. Any other unversioned file belongs to someone else.
    """
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        tables = _tables(connection)
    except sqlite3.OperationalError:  # locked, cannot open...: not a verdict on the file
        raise
    except sqlite3.DatabaseError as exc:  # "file is not a database", encrypted, truncated...
        raise NotAStoreError(f"{where} is not an or_middleware store ({exc}); refusing to use it") from None
    if version == 0:
        if tables:
            shown = ", ".join(sorted(tables)[:5])
            raise NotAStoreError(f"{where} is not an or_middleware store (unversioned, with tables {shown}); "
                                 "refusing to use it: point --db / OR_MIDDLEWARE_LOCAL__URL at another file")
        if not writing:
            raise NotAStoreError(f"{where} is an empty database, not an or_middleware store yet")
        return 0
    check_tables(where, version, tables)
    return version


def _migrate(connection: sqlite3.Connection, where: str) -> None:
    """Bring the file to SCHEMA_VERSION; one process at a time (BEGIN IMMEDIATE), the others see it done."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = check_file(connection, where, writing=True)  # again, under the lock
        for number in range(version + 1, SCHEMA_VERSION + 1):
            for statement in SQLITE_MIGRATIONS[number - 1]:
                connection.execute(statement)
        if version < SCHEMA_VERSION:
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def open_store(path: str | os.PathLike[str], *, busy_timeout_ms: int = 5000, create: bool = True) -> sqlite3.Connection:
    """A connection to write the store at ``path``, migrated to the current schema.

    Autocommit mode (``isolation_level=None``): callers open their own transactions. Raises
    NotAStoreError, changing nothing, when the file holds another application's tables.
    """
    file = Path(path)
    if create:
        _create_private(file)
    elif not file.exists():
        raise FileNotFoundError(f"no store at {file} (is the `local` destination writing elsewhere?)")
    connection = sqlite3.connect(file, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False)
    try:
        connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        version = check_file(connection, str(file), writing=True)  # before anything is changed
        if connection.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
            logger.warning("or_middleware: %s is not in WAL mode; concurrent readers may wait", file)
        connection.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across app crashes
        if version < SCHEMA_VERSION:
            _migrate(connection, str(file))
        elif version > SCHEMA_VERSION:
            logger.info("or_middleware: %s has schema %d (this version knows %d)", file, version, SCHEMA_VERSION)
    except BaseException:
        connection.close()
        raise
    return connection


_MAGIC = b"SQLite format 3\x00"


def _check_header(file: Path) -> None:
    """Refuse, without SQLite opening it, a file that is not SQLite or holds no versioned schema.

    Opening a WAL-mode file, even read-only, makes SQLite create its -wal and -shm files: a
    foreign file is turned away before that whenever its header alone shows it is not ours.
    """
    with open(file, "rb") as handle:
        header = handle.read(100)
    if not header:
        raise NotAStoreError(f"{file} is an empty database, not an or_middleware store yet")
    if not header.startswith(_MAGIC) or len(header) < 100:
        raise NotAStoreError(f"{file} is not a SQLite database, not an or_middleware store; refusing to use it")
    user_version = int.from_bytes(header[60:64], "big")
    if user_version == 0 and not Path(f"{file}-wal").exists():  # no newer version pending in the WAL
        raise NotAStoreError(f"{file} is not an or_middleware store (it has no schema version); refusing to use it")


def open_readonly(path: str | os.PathLike[str], *, busy_timeout_ms: int = 5000) -> tuple[sqlite3.Connection, int]:
    """A read-only connection to the store at ``path`` and its schema version.

    ``mode=ro``: SQLite itself refuses every write (no table, journal mode or version can change).
    FileNotFoundError when there is no file; NotAStoreError when it is not ours.
    """
    file = Path(path)
    if not file.exists():
        raise FileNotFoundError(f"no store at {file} (is the `local` destination writing elsewhere?)")
    if not file.is_file():
        raise NotAStoreError(f"{file} is not a file, not an or_middleware store")
    _check_header(file)
    uri = file.resolve().as_uri() + "?mode=ro"
    connection = sqlite3.connect(uri, uri=True, timeout=busy_timeout_ms / 1000, isolation_level=None,
                                 check_same_thread=False)
    try:
        connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        connection.execute("PRAGMA query_only = 1")
        version = check_file(connection, str(file), writing=False)
    except BaseException:
        connection.close()
        raise
    return connection, version
