"""The report's numbers, from the store's aggregate queries (:mod:`or_middleware.store.aggregates`).

Percentiles interpolate linearly between the closest ranks (PERCENTILE_CONT, as numpy's default
and ``statistics.quantiles(method="inclusive")``); one value is its own percentile. Latency is the
whole call (request sent to response closed), errors included; time to first chunk counts
streamed calls that produced one. Mean cost is over the calls whose cost is known.
"""

from __future__ import annotations

import sqlite3
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from or_middleware.store import NONE_KEY, Filters, StoreReader, Totals
from or_middleware.store.filters import DIMENSIONS, METADATA_PREFIX, dimension_expression

GROUPINGS = DIMENSIONS  # --by names (and metadata.KEY)
Figures = Totals  # one group's numbers (or everything's, with key=None)
TOP_SPENDERS = 5
__all__ = ["GROUPINGS", "METADATA_PREFIX", "NONE_KEY", "Figures", "SecurityEvent", "SecurityReport", "UsageReport",
           "check_grouping", "group_expression", "percentile", "security_report", "usage_report"]


def check_grouping(by: str) -> None:
    """ValueError naming the accepted ``--by`` values unless ``by`` is one."""
    dimension_expression(by, "sqlite")


def group_expression(by: str) -> str:
    """The SQLite expression of ``--by`` dimension ``by`` (kept for callers written before the store package)."""
    return dimension_expression(by, "sqlite")


def _reader(source: StoreReader | sqlite3.Connection) -> StoreReader:
    """A StoreReader over ``source`` (a bare sqlite3 connection is wrapped, not closed)."""
    if isinstance(source, StoreReader):
        return source
    [(version,)] = source.execute("PRAGMA user_version").fetchall()
    return StoreReader(source, "sqlite", "", int(version))


def percentile(values: Sequence[float], p: int) -> float | None:
    """The p-th percentile (1..99) of ``values`` as the store computes it, or None when there are none."""
    if not values:
        return None
    if len(values) == 1:
        return float(values[0])
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


@dataclass
class UsageReport:
    since_unix_nano: int
    by: str
    overall: Totals
    groups: list[Totals]  # most expensive first
    top_spenders: list[Totals]  # users, most expensive first


def usage_report(source: StoreReader | sqlite3.Connection, *, since_unix_nano: int, by: str = "model") -> UsageReport:
    reader = _reader(source)
    since = Filters(since_unix_nano=since_unix_nano)
    overall = reader.totals(since)
    groups = reader.grouped(by, since, order="cost")
    spenders = [
        spender for spender in reader.grouped("user", since, order="cost", limit=TOP_SPENDERS + 1, percentiles=False)
        if spender.key != NONE_KEY  # calls without a user are nobody's spending
    ][:TOP_SPENDERS]
    return UsageReport(since_unix_nano, by, overall, groups, spenders)


# -- security ---------------------------------------------------------------------------------


@dataclass
class SecurityEvent:
    time_unix_nano: int
    kind: str
    user: str | None
    route: str | None
    model: str | None
    trace_id: str
    evidence: str  # JSON


@dataclass
class SecurityReport:
    since_unix_nano: int
    by_kind: list[tuple[str, int, int]]  # kind, signals, distinct users
    by_user: list[tuple[str, int]]  # user, signals
    recent: list[SecurityEvent]


def security_report(source: StoreReader | sqlite3.Connection, *, since_unix_nano: int,
                    recent: int = 20) -> SecurityReport:
    reader = _reader(source)
    since = Filters(since_unix_nano=since_unix_nano)
    summary = reader.security_summary(since, top_users=TOP_SPENDERS)
    events = reader.security_events(since, limit=recent).rows if recent > 0 else []
    return SecurityReport(
        since_unix_nano,
        summary.by_kind,
        [(NONE_KEY if user is None or user == "" else user, count) for user, count in summary.by_user],
        [SecurityEvent(e["time_unix_nano"], e["kind"], e["user_id"], e["route"], e["model"], e["trace_id"],
                       e["evidence"]) for e in events],
    )
