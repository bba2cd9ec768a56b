"""Rows of the store for lists and detail pages: generations, traces, sessions, security signals.

Lists are paged in the database (``LIMIT``/``OFFSET``) and sorted by an indexed column where one
serves; content columns come only with one generation's details. A list of generations counts its
rows up to :data:`COUNT_CAP` ("1,000+" beyond): counting a million rows on every page would cost
more than the page itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from or_middleware.store.filters import DIMENSIONS, EVERYTHING, Filters, time_bound
from or_middleware.store.schema import CONTENT_COLUMNS, GENERATION_COLUMNS

if TYPE_CHECKING:
    from or_middleware.store.reader import StoreReader

LIST_COLUMNS = ("id", *(c for c in GENERATION_COLUMNS if c not in CONTENT_COLUMNS))
ALL_COLUMNS = ("id", *GENERATION_COLUMNS)
# sort name -> (SQL expression, whether it may be NULL)
SORTS: dict[str, tuple[str, bool]] = {
    "time": ("time_unix_nano", False),
    "id": ("id", False),  # the order rows were written
    "duration": ("duration_s", False),
    "cost": ("cost_usd", True),
    "ttfc": ("ttfc_s", True),
    "input_tokens": ("input_tokens", True),
    "output_tokens": ("output_tokens", True),
    "total_tokens": ("total_tokens", True),
    "model": (DIMENSIONS["model"], True),
    "user": ("user_id", True),
}
MAX_PAGE = 1000
COUNT_CAP = 1_000


@dataclass
class Page:
    """One page of a list: its rows, and how many rows the filters select in all (``capped``: more than
    ``total``, which is then :data:`COUNT_CAP`)."""

    rows: list[dict[str, Any]]
    total: int
    limit: int
    offset: int
    capped: bool = False


def page_total(reader: StoreReader, where: str, params: Sequence[Any], offset: int, shown: int,
               more: bool) -> tuple[int, bool]:
    """``(total, capped)`` of a page of generations at ``offset`` that holds ``shown`` rows, ``more``
    when a row beyond it exists. The last page (not beyond it) tells the total itself: a filter that
    matches few calls is not read through a second time to count them."""
    if not more and (shown or not offset):
        return offset + shown, False
    return count_up_to(reader, where, params)


def count_up_to(reader: StoreReader, where: str, params: Sequence[Any], cap: int = COUNT_CAP) -> tuple[int, bool]:
    """``(rows of generations matching where, up to cap; whether more match)``: the database stops
    counting at ``cap + 1`` rows instead of counting them all."""
    [(count,)] = reader.execute(f"SELECT COUNT(*) FROM (SELECT 1 FROM generations WHERE {where} LIMIT ?) AS hits",
                                [*params, cap + 1])
    return min(int(count), cap), int(count) > cap


def _page_bounds(limit: int, offset: int) -> tuple[int, int]:
    return max(1, min(int(limit), MAX_PAGE)), max(0, int(offset))


def generations(reader: StoreReader, filters: Filters = EVERYTHING, *, sort: str = "time", descending: bool = True,
                limit: int = 50, offset: int = 0) -> Page:
    """A page of generations without content columns. ``sort``: one of :data:`SORTS`; ties by id."""
    if sort not in SORTS:
        raise ValueError(f"sort {sort!r}: accepted {', '.join(SORTS)}")
    expression, nullable = SORTS[sort]
    direction = "DESC" if descending else "ASC"
    nulls = " NULLS LAST" if nullable else ""  # both engines: calls without a value at the end
    if sort in ("model", "user"):
        expression = reader.binary_order(expression)
    limit, offset = _page_bounds(limit, offset)
    where, params = filters.where(reader.engine)
    rows = reader.query(
        f"SELECT {', '.join(LIST_COLUMNS)} FROM generations WHERE {where} "
        f"ORDER BY {expression} {direction}{nulls}, id {direction} LIMIT ? OFFSET ?", [*params, limit + 1, offset])
    total, capped = page_total(reader, where, params, offset, min(len(rows), limit), len(rows) > limit)
    return Page(rows[:limit], total, limit, offset, capped)


def generation(reader: StoreReader, generation_id: int) -> dict[str, Any] | None:
    found = reader.query(f"SELECT {', '.join(ALL_COLUMNS)} FROM generations WHERE id = ?", [int(generation_id)])
    if not found:
        return None
    row = found[0]
    row["security_events"] = reader.query(
        "SELECT id, time_unix_nano, kind, evidence FROM security_events WHERE trace_id = ? AND span_id = ? "
        "ORDER BY id", [row["trace_id"], row["span_id"]]) if reader.has_security_events else []
    return row


def trace(reader: StoreReader, trace_id: str) -> list[dict[str, Any]]:
    return reader.query(f"SELECT {', '.join(LIST_COLUMNS)} FROM generations WHERE trace_id = ? "
                        "ORDER BY time_unix_nano, id", [trace_id])


def session(reader: StoreReader, session_id: str, *, limit: int = 1000) -> list[dict[str, Any]]:
    return reader.query(f"SELECT {', '.join(ALL_COLUMNS)} FROM generations WHERE session_id = ? "
                        "ORDER BY time_unix_nano, id LIMIT ?", [session_id, max(1, int(limit))])


def latest_generation_id(reader: StoreReader) -> int:
    [(latest,)] = reader.execute("SELECT COALESCE(MAX(id), 0) FROM generations")
    return int(latest)


def generations_after(reader: StoreReader, generation_id: int, *, limit: int = 1000) -> list[dict[str, Any]]:
    return reader.query(f"SELECT {', '.join(LIST_COLUMNS)} FROM generations WHERE id > ? ORDER BY id LIMIT ?",
                        [int(generation_id), max(1, int(limit))])


# -- security signals ------------------------------------------------------------------------------

# the filters that apply to security_events rows (their own user, route and model columns)
_SECURITY_DIMENSIONS = {"user": "user_id", "route": "route", "model": "model", "kind": "kind"}


def _security_where(filters: Filters) -> tuple[str, list[Any]]:
    conditions, params = ["1=1"], []
    if filters.since_unix_nano:
        conditions.append("e.time_unix_nano >= ?")
        params.append(time_bound(filters.since_unix_nano))
    if filters.until_unix_nano is not None:
        conditions.append("e.time_unix_nano < ?")
        params.append(time_bound(filters.until_unix_nano))
    for by, value in filters.equals.items():
        column = _SECURITY_DIMENSIONS.get(by)
        if column is None:
            raise ValueError(f"security signals filter by {', '.join(_SECURITY_DIMENSIONS)}, not {by!r}")
        if value is None or value == "(none)":
            conditions.append(f"(e.{column} IS NULL OR e.{column} = '')")
        else:
            conditions.append(f"e.{column} = ?")
            params.append(str(value))
    if filters.trace_id is not None:
        conditions.append("e.trace_id = ?")
        params.append(filters.trace_id)
    return " AND ".join(conditions), params


@dataclass
class SecuritySummary:
    by_kind: list[tuple[str, int, int]]  # kind, signals, distinct users
    by_user: list[tuple[str | None, int]]  # user (None: no user), signals


def security_events(reader: StoreReader, filters: Filters = EVERYTHING, *, limit: int = 50,
                    offset: int = 0) -> Page:
    """Signals newest first; ``filters``: time range and ``equals`` on user, route, model or kind."""
    limit, offset = _page_bounds(limit, offset)
    if not reader.has_security_events:
        return Page([], 0, limit, offset)
    where, params = _security_where(filters)
    rows = reader.query(
        "SELECT e.id, e.time_unix_nano, e.kind, e.user_id, e.route, e.model, e.trace_id, e.span_id, e.evidence, "
        "(SELECT MIN(g.id) FROM generations g WHERE g.trace_id = e.trace_id AND g.span_id = e.span_id) "
        f"AS generation_id FROM security_events e WHERE {where} ORDER BY e.id DESC LIMIT ? OFFSET ?",
        [*params, limit, offset])
    [(total,)] = reader.execute(f"SELECT COUNT(*) FROM security_events e WHERE {where}", params)
    return Page(rows, int(total), limit, offset)


def security_summary(reader: StoreReader, filters: Filters = EVERYTHING, *, top_users: int = 5) -> SecuritySummary:
    if not reader.has_security_events:
        return SecuritySummary([], [])
    where, params = _security_where(filters)
    user = reader.binary_order("e.user_id")
    by_kind = [(kind, int(count), int(users)) for kind, count, users in reader.execute(
        f"SELECT e.kind, COUNT(*), COUNT(DISTINCT e.user_id) FROM security_events e WHERE {where} "
        f"GROUP BY e.kind ORDER BY COUNT(*) DESC, {reader.binary_order('e.kind')}", params)]
    by_user = [(name, int(count)) for name, count in reader.execute(
        f"SELECT e.user_id, COUNT(*) FROM security_events e WHERE {where} GROUP BY e.user_id "
        f"ORDER BY COUNT(*) DESC, (e.user_id IS NULL), {user} LIMIT ?", [*params, max(0, int(top_users))])]
    return SecuritySummary(by_kind, by_user)


def security_series(reader: StoreReader, bucket_s: float, filters: Filters = EVERYTHING) -> list[tuple[int, str, int]]:
    if not reader.has_security_events:
        return []
    width = max(1, int(bucket_s * 1_000_000_000))
    start = f"((e.time_unix_nano / {width}) * {width})"
    where, params = _security_where(filters)
    return [(int(b), kind, int(count)) for b, kind, count in reader.execute(
        f"SELECT {start}, e.kind, COUNT(*) FROM security_events e WHERE {where} GROUP BY {start}, e.kind "
        f"ORDER BY 1, {reader.binary_order('e.kind')}", params)]
