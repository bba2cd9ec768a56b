"""The store, opened read-only for the Activity Explorer: one short-lived connection per request.

SQLite is opened with ``mode=ro`` (the file cannot be written through this connection, and a
missing file is an error, never created) plus ``PRAGMA query_only``. Queries are written with
``?`` placeholders in SQL both engines understand.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

Row = tuple[Any, ...]
METADATA_PREFIX = "metadata."


def dimension_sql(by: str) -> str:
    """The SQL of a ``report --by`` dimension over a generations row (``metadata.KEY`` included)."""
    from or_middleware.report.figures import GROUPINGS

    if by in GROUPINGS:
        return GROUPINGS[by]
    if by.startswith(METADATA_PREFIX) and len(by) > len(METADATA_PREFIX):
        key = by[len(METADATA_PREFIX):].replace("'", "''")  # a literal: quotes doubled
        return f"(SELECT m.value FROM json_each(generations.metadata) AS m WHERE m.key = '{key}')"
    raise ValueError(f"unknown dimension {by!r}")


class StoreUnavailable(RuntimeError):
    """The store cannot be opened (missing file, not a store, newer schema...)."""


class ReadOnlyStore:
    """Where the store is, and how to read it without ever writing it."""

    def __init__(self, db: str | Path) -> None:
        self.db = str(db)
        self.path = Path(db).expanduser().resolve()

    def check(self) -> None:
        """Raise StoreUnavailable, with a sentence a user can act on, when the store cannot be read."""
        if not self.path.is_file():
            raise StoreUnavailable(
                f"no store at {self.db} (run `or-middleware demo`, or point --db at the `local` destination's file)")
        with self.connect() as connection:
            tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "generations" not in tables:
            raise StoreUnavailable(f"{self.db} is not an or_middleware store (no generations table)")

    @contextlib.contextmanager
    def connect(self) -> Iterator[Reader]:
        # as_uri() percent-encodes '?', '#' and '%' in the path, so no file name can add URI parameters.
        uri = f"{self.path.as_uri()}?mode=ro"
        try:
            connection = sqlite3.connect(uri, uri=True, timeout=5.0, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open {self.db} read-only: {exc}") from exc
        try:
            connection.execute("PRAGMA query_only = ON")
            with contextlib.ExitStack() as context:
                yield Reader(connection, self.db, context)
        finally:
            connection.close()


class Reader:
    """One read-only connection: ``all``/``one`` run a query and return plain tuples."""

    def __init__(self, connection: sqlite3.Connection, db: str = "", context: contextlib.ExitStack | None = None,
                 ) -> None:
        self.connection = connection  # what report.figures' functions take
        self.db = db
        self.context = context or contextlib.ExitStack()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Row]:
        return iter(self.connection.execute(sql, tuple(params)))

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self.connection.execute(sql, tuple(params)).fetchall()

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        return self.connection.execute(sql, tuple(params)).fetchone()

    def columns(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[Row]]:
        cursor = self.connection.execute(sql, tuple(params))
        return [d[0] for d in cursor.description], cursor.fetchall()

    @staticmethod
    def metadata_equals() -> str:
        """SQL true when the row's metadata has key ``?`` with (text) value ``?``; both bound parameters."""
        # json_each rather than a '$."key"' path: a path cannot quote every key (a '"' in it), a parameter can.
        return ("EXISTS (SELECT 1 FROM json_each(generations.metadata) AS m "
                "WHERE m.key = ? AND CAST(m.value AS TEXT) = ?)")
