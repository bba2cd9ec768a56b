"""Moved to :mod:`or_middleware.store` (kept so existing imports work)."""

from or_middleware.store.rows import generation_row, security_rows
from or_middleware.store.schema import GENERATION_COLUMNS, SCHEMA_VERSION, SECURITY_COLUMNS, StoreVersionError
from or_middleware.store.sqlite import is_busy, open_store
from or_middleware.store.sqlite_writer import LocalStoreExporter

__all__ = [
    "GENERATION_COLUMNS",
    "SCHEMA_VERSION",
    "SECURITY_COLUMNS",
    "LocalStoreExporter",
    "StoreVersionError",
    "generation_row",
    "is_busy",
    "open_store",
    "security_rows",
]
