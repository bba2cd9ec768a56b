"""The store: generations and security signals in SQLite (one machine) or PostgreSQL (a fleet).

Reading (``report``, ``tail``, the UI) goes through :func:`open_store_reader`, which opens either
engine read-only and refuses a database that is not ours; see :mod:`or_middleware.store.reader`.
Writing is the ``local`` destination's exporter (:mod:`~or_middleware.store.sqlite_writer`,
:mod:`~or_middleware.store.postgres`), on the exporter thread.
"""

import importlib
from typing import TYPE_CHECKING, Any

# The read API is loaded on first use (``from or_middleware.store import StoreReader`` works as
# before): the ``local`` destination's writer imports this package too, and a traced app should
# not carry the report's query modules.
_EXPORTS = {
    "Bucket": "aggregates", "Totals": "aggregates",
    "DIMENSIONS": "filters", "NONE_KEY": "filters", "Filters": "filters",
    "SORTS": "listing", "Page": "listing", "SecuritySummary": "listing",
    "StoreError": "reader", "StoreReader": "reader", "open_store_reader": "reader",
    "SCHEMA_VERSION": "schema", "NotAStoreError": "schema", "StoreVersionError": "schema",
    "display_url": "sql", "is_postgres_url": "sql",
}

if TYPE_CHECKING:
    from or_middleware.store.aggregates import Bucket, Totals
    from or_middleware.store.filters import DIMENSIONS, NONE_KEY, Filters
    from or_middleware.store.listing import SORTS, Page, SecuritySummary
    from or_middleware.store.reader import StoreError, StoreReader, open_store_reader
    from or_middleware.store.schema import SCHEMA_VERSION, NotAStoreError, StoreVersionError
    from or_middleware.store.sql import display_url, is_postgres_url


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


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
