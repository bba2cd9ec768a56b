"""The report's numbers, exact from the rows: sums and counts in SQL, percentiles with ``statistics``.

Percentiles use ``statistics.quantiles(method="inclusive")``: linear interpolation between the
closest ranks (the same as numpy's default and Excel's PERCENTILE.INC); one value is its own
percentile. Latency is the whole call (request sent to response closed), errors included;
time to first chunk counts streamed calls that produced one. Mean cost is over the calls whose
cost is known.
"""

from __future__ import annotations

import sqlite3
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

# --by name -> SQL expression of the group key
GROUPINGS: dict[str, str] = {
    "model": "COALESCE(response_model, request_model)",  # the model that served, else the one asked for
    "request_model": "request_model",
    "user": "user_id",
    "session": "session_id",
    "route": "route",
    "provider": "COALESCE(upstream_provider, provider)",  # who served it (OpenRouter's provider), else the API
    "api": "provider",
    "operation": "operation",
    "status": "status",
}
METADATA_PREFIX = "metadata."
NONE_KEY = "(none)"
TOP_SPENDERS = 5


def group_expression(by: str) -> str:
    if by.startswith(METADATA_PREFIX) and len(by) > len(METADATA_PREFIX):
        key = by[len(METADATA_PREFIX):].replace('"', '""')
        return f"json_extract(metadata, '$.\"{key}\"')"
    try:
        return GROUPINGS[by]
    except KeyError:
        accepted = ", ".join([*GROUPINGS, "metadata.KEY"])
        raise ValueError(f"--by {by!r}: accepted {accepted}") from None


def percentile(values: Sequence[float], p: int) -> float | None:
    """The p-th percentile (1..99) of ``values``, or None when there are none."""
    if not values:
        return None
    if len(values) == 1:
        return float(values[0])
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


@dataclass
class Figures:
    """One group's numbers (or everything's, with ``key=None``)."""

    key: str | None
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    priced: int = 0  # calls with a known cost
    durations: list[float] = field(default_factory=list, repr=False)
    first_chunks: list[float] = field(default_factory=list, repr=False)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def mean_cost_usd(self) -> float | None:
        return self.cost_usd / self.priced if self.priced else None

    def latency(self, p: int) -> float | None:
        return percentile(self.durations, p)

    def ttfc(self, p: int) -> float | None:
        return percentile(self.first_chunks, p)

    def as_dict(self) -> dict[str, object]:
        return {
            "key": self.key,
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_tokens": self.cached_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cost_usd": self.cost_usd,
            "mean_cost_usd": self.mean_cost_usd,
            "latency_p50_s": self.latency(50),
            "latency_p95_s": self.latency(95),
            "latency_p99_s": self.latency(99),
            "ttfc_p50_s": self.ttfc(50),
            "ttfc_p95_s": self.ttfc(95),
        }


@dataclass
class UsageReport:
    since_unix_nano: int
    by: str
    overall: Figures
    groups: list[Figures]  # most expensive first
    top_spenders: list[Figures]  # users, most expensive first


_SUMS = (
    "COUNT(*), COALESCE(SUM(status = 'error'), 0), COALESCE(SUM(input_tokens), 0), "
    "COALESCE(SUM(output_tokens), 0), COALESCE(SUM(cached_tokens), 0), COALESCE(SUM(reasoning_tokens), 0), "
    "TOTAL(cost_usd), COUNT(cost_usd)"
)


def _figures(key: str | None, row: Sequence[object]) -> Figures:
    requests, errors, tin, tout, cached, reasoning, cost, priced = row
    return Figures(key, int(requests), int(errors), int(tin), int(tout), int(cached), int(reasoning),  # type: ignore[arg-type]
                   float(cost), int(priced))  # type: ignore[arg-type]


def _key(value: object) -> str:
    return NONE_KEY if value is None or value == "" else str(value)


def usage_report(connection: sqlite3.Connection, *, since_unix_nano: int, by: str = "model") -> UsageReport:
    key = group_expression(by)
    since = (since_unix_nano,)
    overall = _figures(None, connection.execute(
        f"SELECT {_SUMS} FROM generations WHERE time_unix_nano >= ?", since).fetchone())
    groups: dict[str, Figures] = {}
    for row in connection.execute(
        f"SELECT {key} AS k, {_SUMS} FROM generations WHERE time_unix_nano >= ? GROUP BY k", since
    ):
        name = _key(row[0])
        if name in groups:  # NULL and '' both read (none)
            merged = _figures(name, row[1:])
            existing = groups[name]
            for attr in ("requests", "errors", "input_tokens", "output_tokens", "cached_tokens",
                         "reasoning_tokens", "cost_usd", "priced"):
                setattr(existing, attr, getattr(existing, attr) + getattr(merged, attr))
        else:
            groups[name] = _figures(name, row[1:])
    durations: dict[str, list[float]] = defaultdict(list)
    first_chunks: dict[str, list[float]] = defaultdict(list)
    for name, duration, ttfc in connection.execute(
        f"SELECT {key}, duration_s, ttfc_s FROM generations WHERE time_unix_nano >= ?", since
    ):
        durations[_key(name)].append(duration)
        overall.durations.append(duration)
        if ttfc is not None:
            first_chunks[_key(name)].append(ttfc)
            overall.first_chunks.append(ttfc)
    for name, figures in groups.items():
        figures.durations = sorted(durations[name])
        figures.first_chunks = sorted(first_chunks[name])
    spenders = [
        _figures(_key(row[0]), row[1:])
        for row in connection.execute(
            f"SELECT user_id AS k, {_SUMS} FROM generations WHERE time_unix_nano >= ? AND user_id IS NOT NULL "
            "GROUP BY k ORDER BY TOTAL(cost_usd) DESC, COUNT(*) DESC LIMIT ?",
            (since_unix_nano, TOP_SPENDERS),
        )
    ]
    ordered = sorted(groups.values(), key=lambda f: (-f.cost_usd, -f.requests, f.key or ""))
    return UsageReport(since_unix_nano, by, overall, ordered, spenders)


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


def security_report(connection: sqlite3.Connection, *, since_unix_nano: int, recent: int = 20) -> SecurityReport:
    since = (since_unix_nano,)
    by_kind = [
        (kind, int(count), int(users))
        for kind, count, users in connection.execute(
            "SELECT kind, COUNT(*), COUNT(DISTINCT user_id) FROM security_events WHERE time_unix_nano >= ? "
            "GROUP BY kind ORDER BY COUNT(*) DESC, kind", since)
    ]
    by_user = [
        (_key(user), int(count))
        for user, count in connection.execute(
            "SELECT user_id, COUNT(*) FROM security_events WHERE time_unix_nano >= ? "
            "GROUP BY user_id ORDER BY COUNT(*) DESC, user_id LIMIT ?", (since_unix_nano, TOP_SPENDERS))
    ]
    events = [
        SecurityEvent(*row)
        for row in connection.execute(
            "SELECT time_unix_nano, kind, user_id, route, model, trace_id, evidence FROM security_events "
            "WHERE time_unix_nano >= ? ORDER BY id DESC LIMIT ?", (since_unix_nano, recent))
    ]
    return SecurityReport(since_unix_nano, by_kind, by_user, events)
