"""The store: generations and security signals in SQLite (one machine) or PostgreSQL (a fleet).

Reading (``report``, ``tail``, the UI) goes through :func:`open_store_reader`, which opens either
engine read-only and refuses a database that is not ours; see :mod:`or_middleware.store.reader`.
Writing is the ``local`` destination's exporter (:mod:`~or_middleware.store.sqlite_writer`,
:mod:`~or_middleware.store.postgres`), on the exporter thread.
"""

from or_middleware.store.aggregates import Bucket, Totals
from or_middleware.store.filters import DIMENSIONS, NONE_KEY, Filters
from or_middleware.store.listing import SORTS, Page, SecuritySummary
from or_middleware.store.reader import StoreError, StoreReader, open_store_reader
from or_middleware.store.schema import SCHEMA_VERSION, NotAStoreError, StoreVersionError
from or_middleware.store.sql import display_url, is_postgres_url

__all__ = [
    "DIMENSIONS",
    "NONE_KEY",
    "SCHEMA_VERSION",
    "SORTS",
    "Bucket",
    "Filters",
    "NotAStoreError",
    "Page",
    "SecuritySummary",
    "StoreError",
    "StoreReader",
    "StoreVersionError",
    "Totals",
    "display_url",
    "is_postgres_url",
    "open_store_reader",
]
