"""What each page shows, read from the store with aggregate SQL (counts and sums never loaded as rows).

The overview's and the models' figures are ``report``'s own (``report.figures.usage_report``), so the
page and ``or-middleware report --format json`` agree for the same range and store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from or_middleware.report.figures import GROUPINGS, NONE_KEY, UsageReport, usage_report
from or_middleware.store.listing import page_total
from or_middleware.ui.charts import MAX_SERIES, Series, over_time
from or_middleware.ui.filters import GenerationFilter, Paging, TimeRange
from or_middleware.ui.source import Reader

Record = dict[str, Any]

LIST_COLUMNS = (
    "id", "time_unix_nano", f"{GROUPINGS['model']} AS model", f"{GROUPINGS['provider']} AS provider",
    "user_id", "session_id", "route", "operation", "status", "error_type", "input_tokens", "output_tokens",
    "cost_usd", "duration_s", "ttfc_s", "stream", "trace_id",
)
_LIST = ", ".join(LIST_COLUMNS)
SESSION_CALLS = 200  # shown on a session's page (with their content: each call may hold ~256 kB of text)
CONTENT_COLUMNS = ("system_instructions", "input_messages", "output_messages", "tool_definitions")


def _records(reader: Reader, sql: str, params: list[object]) -> list[Record]:
    return reader.records(sql, params)


def _span(reader: Reader, where: str, values: list[object]) -> tuple[int, int] | None:
    row = reader.one(f"SELECT MIN(time_unix_nano), MAX(time_unix_nano) FROM generations WHERE {where}", values)
    return None if row is None or row[0] is None else (int(row[0]), int(row[1]))


# -- overview and models --------------------------------------------------------------------------


def overview(reader: Reader, time: TimeRange, by: str) -> UsageReport:
    """The report's own figures for the range (``or-middleware report --since ... --by ...``): the one
    call into the report's code, so the page and the command cannot disagree."""
    return usage_report(reader.store, since_unix_nano=time.since_unix_nano, by=by)


def overview_series(reader: Reader, time: TimeRange, by: str) -> Series:
    """The overview's charts: the range's figures per time bucket, the most expensive groups drawn apart."""
    where, values = GenerationFilter(time=TimeRange(time.since, time.since_unix_nano)).where()
    top = reader.all(f"SELECT CAST({reader.dimension(by)} AS TEXT) AS k FROM generations WHERE {where} "
                     "GROUP BY k ORDER BY COALESCE(SUM(cost_usd), 0) DESC, COUNT(*) DESC LIMIT ?",
                     [*values, MAX_SERIES + 1])
    keys = [k for (k,) in top if k not in (None, "")][:MAX_SERIES]
    bounds = _span(reader, where, values)
    if bounds is None:
        return Series()
    return over_time(reader, where=where, values=values, by=by, keys=keys, first_nano=bounds[0], last_nano=bounds[1])


# -- generations ----------------------------------------------------------------------------------


@dataclass
class GenerationsPage:
    rows: list[Record]
    total: int  # matching rows, counted up to COUNT_CAP
    capped: bool  # more than ``total`` match
    more: bool  # a row beyond this page exists


def generations_page(reader: Reader, found: GenerationFilter, paging: Paging) -> GenerationsPage:
    where, values = found.where(reader)
    rows = _records(reader, f"SELECT {_LIST} FROM generations WHERE {where} ORDER BY {paging.order_by()} "
                            "LIMIT ? OFFSET ?", [*values, paging.size + 1, paging.offset])
    shown, more = rows[:paging.size], len(rows) > paging.size
    total, capped = page_total(reader.store, where, values, paging.offset, len(shown), more)
    return GenerationsPage(shown, total, capped, more)


def generation(reader: Reader, generation_id: int) -> Record | None:
    found = _records(reader, "SELECT * FROM generations WHERE id = ?", [generation_id])
    if not found:
        return None
    record = found[0]
    record["signals"] = _records(
        reader, "SELECT time_unix_nano, kind, evidence FROM security_events WHERE trace_id = ? AND span_id = ? "
                "ORDER BY id", [record["trace_id"], record["span_id"]]) if reader.has_security_events else []
    (record["trace_calls"],) = reader.one("SELECT COUNT(*) FROM generations WHERE trace_id = ?",
                                          [record["trace_id"]]) or (0,)
    return record


def newer_than(reader: Reader, after_id: int, limit: int = 100) -> list[Record]:
    """Generations written after row ``after_id`` (the Live page), oldest first."""
    return _records(reader, f"SELECT {_LIST} FROM generations WHERE id > ? ORDER BY id LIMIT ?", [after_id, limit])


def latest(reader: Reader, limit: int = 50) -> list[Record]:
    return _records(reader, f"SELECT {_LIST} FROM generations ORDER BY id DESC LIMIT ?", [limit])


# -- traces ---------------------------------------------------------------------------------------

_TRACE_SUMS = (
    "trace_id, MIN(time_unix_nano) AS start, MAX(time_unix_nano + CAST(duration_s * 1e9 AS BIGINT)) AS finish, "
    "COUNT(*) AS calls, COALESCE(SUM(cost_usd), 0) AS cost_usd, "
    "SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS errors, "
    "MIN(route) AS route, MIN(user_id) AS user_id, MIN(session_id) AS session_id"
)


def _in_range(reader: Reader, time: TimeRange, columns: str, user: str | None = None) -> tuple[str, list[object]]:
    """The range's rows (``user``'s only, when given) as a CTE, materialized on SQLite: grouping them
    then cannot pick an index (trace, user) that walks the whole table instead of the time index's
    few rows. PostgreSQL's planner weighs that itself, and a materialized CTE would cost it its
    parallel scan and hash aggregate."""
    where, values = time.where()
    if user is not None:  # here, not after: the user's index finds their calls among a million
        where += " AND user_id = ?"
        values.append(user)
    materialized = " MATERIALIZED" if reader.store.engine == "sqlite" else ""
    return f"WITH picked AS{materialized} (SELECT {columns} FROM generations WHERE {where}) ", values


def traces_page(reader: Reader, time: TimeRange, paging: Paging) -> list[Record]:
    """Up to ``paging.size + 1`` traces, latest first (one more than shown: is there a next page?)."""
    cte, values = _in_range(reader, time, "trace_id, time_unix_nano, duration_s, cost_usd, status, route, user_id, "
                                  "session_id")
    return _records(reader, f"{cte}SELECT {_TRACE_SUMS} FROM picked GROUP BY trace_id "
                            "ORDER BY start DESC LIMIT ? OFFSET ?", [*values, paging.size + 1, paging.offset])


def trace(reader: Reader, trace_id: str) -> list[Record]:
    return _records(reader, f"SELECT {_LIST}, parent_span_id, span_id, finish_reason FROM generations "
                            "WHERE trace_id = ? ORDER BY time_unix_nano, id", [trace_id])


# -- sessions and users -----------------------------------------------------------------------------

_ACTIVITY = (
    "COUNT(*) AS calls, COALESCE(SUM(cost_usd), 0) AS cost_usd, COALESCE(SUM(input_tokens), 0) AS input_tokens, "
    "COALESCE(SUM(output_tokens), 0) AS output_tokens, "
    "SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS errors, "
    "MIN(time_unix_nano) AS first_seen, MAX(time_unix_nano) AS last_seen"
)


_ACTIVITY_COLUMNS = "user_id, session_id, cost_usd, input_tokens, output_tokens, status, time_unix_nano"


def sessions_page(reader: Reader, time: TimeRange, paging: Paging, user: str | None = None) -> list[Record]:
    """Up to ``paging.size + 1`` sessions, latest activity first."""
    cte, values = _in_range(reader, time, _ACTIVITY_COLUMNS, user)
    return _records(reader, f"{cte}SELECT session_id, MIN(user_id) AS user_id, COUNT(DISTINCT user_id) AS users, "
                            f"{_ACTIVITY} FROM picked WHERE session_id IS NOT NULL GROUP BY session_id "
                            "ORDER BY last_seen DESC LIMIT ? OFFSET ?",
                    [*values, paging.size + 1, paging.offset])


def session(reader: Reader, session_id: str, limit: int = SESSION_CALLS) -> list[Record]:
    columns = ", ".join((_LIST, "input_messages", "output_messages", "system_instructions"))
    return _records(reader, f"SELECT {columns} FROM generations WHERE session_id = ? "
                            "ORDER BY time_unix_nano, id LIMIT ?", [session_id, limit])


def users_page(reader: Reader, time: TimeRange, paging: Paging) -> list[Record]:
    """Up to ``paging.size + 1`` users, most expensive first, with their security signal counts."""
    cte, values = _in_range(reader, time, _ACTIVITY_COLUMNS)
    rows = _records(reader, f"{cte}SELECT user_id, COUNT(DISTINCT session_id) AS sessions, {_ACTIVITY} "
                            "FROM picked WHERE user_id IS NOT NULL GROUP BY user_id "
                            "ORDER BY cost_usd DESC, calls DESC, user_id LIMIT ? OFFSET ?",
                    [*values, paging.size + 1, paging.offset])
    names = [row["user_id"] for row in rows]
    signals = dict(reader.all(
        f"SELECT user_id, COUNT(*) FROM security_events WHERE time_unix_nano >= ? AND user_id IN "
        f"({', '.join('?' * len(names))}) GROUP BY user_id", [time.since_unix_nano, *names])) \
        if names and reader.has_security_events else {}
    for row in rows:
        row["signals"] = signals.get(row["user_id"], 0)
    return rows


def user_activity(reader: Reader, time: TimeRange, user_id: str) -> Record:
    where, values = time.where()
    found = _records(reader, f"SELECT {_ACTIVITY}, COUNT(DISTINCT session_id) AS sessions FROM generations "
                             f"WHERE {where} AND user_id = ?", [*values, user_id])
    return found[0]


def user_models(reader: Reader, time: TimeRange, user_id: str) -> list[Record]:
    where, values = time.where()
    return _records(reader, f"SELECT {reader.dimension('model')} AS model, {_ACTIVITY} FROM generations "
                            f"WHERE {where} AND user_id = ? GROUP BY 1 ORDER BY cost_usd DESC, calls DESC",
                    [*values, user_id])


# -- security -------------------------------------------------------------------------------------


@dataclass
class Security:
    by_kind: list[tuple[str, int, int]]
    by_user: list[tuple[str, dict[str, int], int]]  # user, signals per kind, total
    events: list[Record]
    total: int
    series: dict[str, Any]


def security(reader: Reader, time: TimeRange, paging: Paging, user: str | None = None) -> Security:
    if not reader.has_security_events:  # a schema-1 store (read, never upgraded, by the UI) has no such table
        return Security([], [], [], 0, {"times": [], "charts": {}})
    by_kind = [(kind, int(count), int(users)) for kind, count, users in reader.all(
        "SELECT kind, COUNT(*), COUNT(DISTINCT user_id) FROM security_events WHERE time_unix_nano >= ? "
        "GROUP BY kind ORDER BY COUNT(*) DESC, kind", [time.since_unix_nano])]
    per_user: dict[str, dict[str, int]] = {}
    for user_id, kind, count in reader.all(
            "SELECT user_id, kind, COUNT(*) FROM security_events WHERE time_unix_nano >= ? "
            "GROUP BY user_id, kind", [time.since_unix_nano]):
        per_user.setdefault(NONE_KEY if user_id is None else user_id, {})[kind] = int(count)
    by_user = sorted(((u, kinds, sum(kinds.values())) for u, kinds in per_user.items()), key=lambda t: (-t[2], t[0]))
    where, values = "s.time_unix_nano >= ?", [time.since_unix_nano]
    if user is not None:
        where += " AND s.user_id = ?"
        values.append(user)
    (total,) = reader.one(f"SELECT COUNT(*) FROM security_events AS s WHERE {where}", values) or (0,)
    events = _records(
        reader, "SELECT s.id, s.time_unix_nano, s.kind, s.user_id, s.route, s.model, s.trace_id, s.evidence, "
                "(SELECT g.id FROM generations AS g WHERE g.trace_id = s.trace_id AND g.span_id = s.span_id "
                " LIMIT 1) AS generation_id "
                f"FROM security_events AS s WHERE {where} ORDER BY s.id DESC LIMIT ? OFFSET ?",
        [*values, paging.size, paging.offset])
    for event in events:
        event["evidence"] = json_object(event["evidence"])
    return Security(by_kind, by_user, events, int(total), _signals_over_time(reader, time))


def _signals_over_time(reader: Reader, time: TimeRange) -> dict[str, Any]:
    from or_middleware.ui.charts import bucket_width_ns

    row = reader.one("SELECT MIN(time_unix_nano), MAX(time_unix_nano) FROM security_events "
                     "WHERE time_unix_nano >= ?", [time.since_unix_nano])
    if row is None or row[0] is None:
        return {"times": [], "charts": {}}
    width = bucket_width_ns(int(row[0]), int(row[1]))
    counts: dict[str, dict[int, int]] = {}
    for b, kind, count in reader.all(
            f"SELECT time_unix_nano / {width} AS b, kind, COUNT(*) FROM security_events "
            "WHERE time_unix_nano >= ? GROUP BY b, kind", [time.since_unix_nano]):
        counts.setdefault(kind, {})[int(b)] = int(count)
    first, last = int(row[0]) // width, int(row[1]) // width
    order = list(range(first, last + 1))
    return {"times": [b * width / 1e9 for b in order], "step": width / 1e9,
            "charts": {"signals": {kind: [per.get(b, 0) for b in order] for kind, per in sorted(counts.items())}}}


def json_object(text: Any) -> Any:
    if not isinstance(text, str | bytes):  # already decoded (a JSON column of PostgreSQL), or None
        return text
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text
