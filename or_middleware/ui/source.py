"""The store, opened read-only for the Activity Explorer through the store's reader, one connection
per request: a SQLite path (``mode=ro``, ``query_only``) or a ``postgresql://`` URL (read-only
sessions). Queries are written once with ``?`` placeholders in SQL both engines speak; what differs
(a dimension's expression, a metadata lookup) comes from the store's own helpers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from or_middleware.store import NotAStoreError, StoreError, StoreReader, display_url, open_store_reader
from or_middleware.store.filters import METADATA_PREFIX, dimension_expression, group_key

Row = tuple[Any, ...]
__all__ = ["METADATA_PREFIX", "ReadOnlyStore", "Reader", "StoreUnavailable"]


class StoreUnavailable(RuntimeError):
    """The store cannot be opened (missing file, not a store, newer schema, database down...)."""


class ReadOnlyStore:
    """Where the store is, and how to read it without ever writing it."""

    def __init__(self, db: str | Path) -> None:
        self.db = str(db)
        self.display_name = display_url(self.db)  # never a password

    def check(self) -> None:
        """Raise StoreUnavailable, with a sentence a user can act on, when the store cannot be read."""
        with self.connect():
            pass

    @contextlib.contextmanager
    def connect(self) -> Iterator[Reader]:
        try:
            store = open_store_reader(self.db)
        except FileNotFoundError:
            raise StoreUnavailable(f"no store at {self.display_name} (run `or-middleware demo`, or point --db "
                                   "at the `local` destination's file)") from None
        except (NotAStoreError, StoreError) as exc:
            raise StoreUnavailable(str(exc)) from None
        try:
            yield Reader(store)
        finally:
            store.close()


class Reader:
    """One read-only connection: ``all``/``one``/``records`` run a query (``?`` placeholders)."""

    def __init__(self, store: StoreReader) -> None:
        self.store = store  # what report.figures' functions take

    @property
    def has_security_events(self) -> bool:
        return self.store.has_security_events

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Row]:
        return iter(self.store.execute(sql, list(params)))

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self.store.execute(sql, list(params))

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = self.store.execute(sql, list(params))
        return rows[0] if rows else None

    def records(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return self.store.query(sql, list(params))

    def dimension(self, by: str) -> str:
        """The SQL of a ``report --by`` dimension (``metadata.KEY`` included) on this engine."""
        return dimension_expression(by, self.store.engine)

    def metadata_equals(self, key: str) -> str:
        """SQL true when the row's metadata has ``key`` with (text) value ``?`` (the key is quoted by the store)."""
        return f"{group_key(METADATA_PREFIX + key, self.store.engine)} = ?"
