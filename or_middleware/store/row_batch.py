"""StoreRows: a batch of spans as the store's rows, in bytes: what the PostgreSQL writer sends,
retries and spools (see :mod:`or_middleware.export.delivery`).

The bytes are JSON: for each table its column names and rows, so a batch spooled by one version
of the library is inserted by another with the columns both know. Rows are the ones the SQLite
writer inserts (:mod:`~or_middleware.store.rows`); nothing else is in the body: no URL, no
credential. :func:`decode_batch` refuses what is not such a batch; column names come only
from the library's own list, never from the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from or_middleware.store.rows import generation_row, is_genai, security_rows
from or_middleware.store.schema import GENERATION_COLUMNS, SECURITY_COLUMNS

FORMAT = 1
TABLE_COLUMNS = {"generations": GENERATION_COLUMNS, "security_events": SECURITY_COLUMNS}
Row = tuple[Any, ...]


@dataclass(frozen=True)
class TableRows:
    columns: tuple[str, ...]
    rows: list[Row]

    def key_of(self, row: Row) -> tuple[Any, Any]:
        """(trace_id, span_id): the span a row belongs to."""
        return row[self.columns.index("trace_id")], row[self.columns.index("span_id")]


@dataclass(frozen=True)
class RowBatch:
    generations: TableRows
    security_events: TableRows

    def chunks(self, max_bytes: int) -> Iterator[RowBatch]:
        """Consecutive parts of about ``max_bytes`` each (a span's security rows with its generation),
        so a huge batch is written as several transactions that each fit in the time allowed."""
        signals: dict[tuple[Any, Any], list[Row]] = {}
        for row in self.security_events.rows:
            signals.setdefault(self.security_events.key_of(row), []).append(row)
        part: list[Row] = []
        part_signals: list[Row] = []
        size = 0
        for row in self.generations.rows:
            own = signals.get(self.generations.key_of(row), [])
            size += _size(row) + sum(_size(signal) for signal in own)
            part.append(row)
            part_signals += own
            if size >= max_bytes:
                yield RowBatch(TableRows(self.generations.columns, part),
                               TableRows(self.security_events.columns, part_signals))
                part, part_signals, size = [], [], 0
        if part:
            yield RowBatch(TableRows(self.generations.columns, part),
                           TableRows(self.security_events.columns, part_signals))


def _size(row: Row) -> int:
    return sum(len(value) if isinstance(value, str) else 8 for value in row)


class StoreRows:
    """The span encoding of the PostgreSQL store: GenAI spans as rows (other spans are not stored)."""

    content_type = "application/vnd.or-middleware.store-rows+json"

    def encode(self, spans: Sequence[ReadableSpan]) -> bytes:
        genai = [span for span in spans if is_genai(span)]
        body = {
            "format": FORMAT,
            "generations": {"columns": GENERATION_COLUMNS, "rows": [generation_row(span) for span in genai]},
            "security_events": {"columns": SECURITY_COLUMNS,
                                "rows": [row for span in genai for row in security_rows(span)]},
        }
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _table(data: Any, table: str) -> TableRows:
    known = TABLE_COLUMNS[table]
    part = data.get(table) if isinstance(data, dict) else None
    if not (isinstance(part, dict) and isinstance(part.get("columns"), list) and isinstance(part.get("rows"), list)):
        raise ValueError(f"no {table} in the batch")
    columns = part["columns"]
    keep = [index for index, name in enumerate(columns) if name in known]  # a newer library's extra columns go
    if {"trace_id", "span_id"} - {columns[index] for index in keep}:
        raise ValueError(f"the {table} rows have no trace_id and span_id")
    rows = []
    for row in part["rows"]:
        if not isinstance(row, list) or len(row) != len(columns):
            raise ValueError(f"a {table} row does not match its columns")
        rows.append(tuple(row[index] for index in keep))
    return TableRows(tuple(columns[index] for index in keep), rows)


def decode_batch(body: bytes) -> RowBatch:
    """The rows of a batch made by :class:`StoreRows` (ValueError for anything else)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a batch of store rows ({type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError("not a batch of store rows (unknown format)")
    return RowBatch(_table(data, "generations"), _table(data, "security_events"))
