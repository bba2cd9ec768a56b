"""Figures over many generations, computed by the database: sums and counts, percentiles, time buckets.

Nothing here loads rows into Python to count them: each function runs one aggregate query (plus
one per percentile column) whatever the number of rows. Percentiles interpolate linearly between
the closest ranks (PERCENTILE_CONT; numpy's default; ``statistics.quantiles(method="inclusive")``):
PostgreSQL computes them with ``percentile_cont``; SQLite numbers the rows with a window function
and picks the two ranks around ``(n - 1) * p``, which are interpolated as PostgreSQL does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from or_middleware.store.filters import EVERYTHING, NONE_KEY, Filters, group_key

if TYPE_CHECKING:
    from or_middleware.store.reader import StoreReader

LATENCY_PERCENTILES = (50, 95, 99)
TTFC_PERCENTILES = (50, 95)
GroupOrder = Literal["cost", "requests", "recent", "key"]


@dataclass
class Totals:
    """One group's figures (``key=None``: all the generations the filters select)."""

    key: str | None
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    priced: int = 0  # calls with a known cost
    output_seconds: float = 0.0  # summed duration of the calls that reported output tokens
    first_unix_nano: int | None = None  # start of the earliest call
    last_unix_nano: int | None = None  # start of the latest call
    latency_percentiles: dict[int, float | None] = field(default_factory=dict)  # whole call, seconds
    ttfc_percentiles: dict[int, float | None] = field(default_factory=dict)  # time to first chunk

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def mean_cost_usd(self) -> float | None:
        """Mean cost over the calls whose cost is known."""
        return self.cost_usd / self.priced if self.priced else None

    @property
    def cost_per_1k_output_tokens_usd(self) -> float | None:
        return 1000 * self.cost_usd / self.output_tokens if self.output_tokens and self.priced else None

    @property
    def output_tokens_per_s(self) -> float | None:
        return self.output_tokens / self.output_seconds if self.output_seconds > 0 else None

    def latency(self, p: int) -> float | None:
        return self.latency_percentiles.get(p)

    def ttfc(self, p: int) -> float | None:
        return self.ttfc_percentiles.get(p)

    def as_dict(self) -> dict[str, object]:
        """The figures ``or-middleware report --format json`` prints for a group."""
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
            **{f"latency_p{p}_s": self.latency(p) for p in LATENCY_PERCENTILES},
            **{f"ttfc_p{p}_s": self.ttfc(p) for p in TTFC_PERCENTILES},
        }


_SUMS = (
    "COUNT(*), SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END), SUM(input_tokens), SUM(output_tokens), "
    "SUM(cached_tokens), SUM(reasoning_tokens), SUM(cost_usd), COUNT(cost_usd), "
    "SUM(CASE WHEN output_tokens IS NOT NULL THEN duration_s END), MIN(time_unix_nano), MAX(time_unix_nano)"
)
_ORDER = {  # SQL of each group order, over the _SUMS aggregates
    "cost": "COALESCE(SUM(cost_usd), 0) DESC, COUNT(*) DESC",
    "requests": "COUNT(*) DESC, COALESCE(SUM(cost_usd), 0) DESC",
    "recent": "MAX(time_unix_nano) DESC",
}


def _totals(key: str | None, row: Sequence[Any]) -> Totals:
    requests, errors, tin, tout, cached, reasoning, cost, priced, output_s, first, last = row
    return Totals(key, int(requests), int(errors or 0), int(tin or 0), int(tout or 0), int(cached or 0),
                  int(reasoning or 0), float(cost or 0.0), int(priced), float(output_s or 0.0),
                  None if first is None else int(first), None if last is None else int(last))


def _shown(key: Any) -> str:
    return NONE_KEY if key is None else str(key)


def totals(reader: StoreReader, filters: Filters = EVERYTHING, *, percentiles: bool = True) -> Totals:
    """Figures of every generation ``filters`` selects."""
    where, params = filters.where(reader.engine)
    [row] = reader.execute(f"SELECT {_SUMS} FROM generations WHERE {where}", params)
    result = _totals(None, row)
    if percentiles:
        result.latency_percentiles = percentiles_of(reader, "duration_s", LATENCY_PERCENTILES, filters).get(None, {})
        result.ttfc_percentiles = percentiles_of(reader, "ttfc_s", TTFC_PERCENTILES, filters).get(None, {})
    return result


def grouped(reader: StoreReader, by: str, filters: Filters = EVERYTHING, *, order: GroupOrder = "cost",
            limit: int | None = None, offset: int = 0, percentiles: bool = True) -> list[Totals]:
    """Figures per value of dimension ``by`` (``model``, ``user``, ``metadata.team``...), in ``order``.

    ``order``: ``cost`` (most expensive first, the report's), ``requests``, ``recent`` (latest call
    first) or ``key``; ties by key. ``limit``/``offset`` page through many groups (users, sessions).
    """
    key = group_key(by, reader.engine)
    where, params = filters.where(reader.engine)
    # the key's expression, not its alias: PostgreSQL takes an output name in ORDER BY only on its own
    by_key = f"({key} IS NULL), {reader.binary_order(key)}"
    ordering = by_key if order == "key" else f"{_ORDER[order]}, {by_key}"
    page = ""
    if limit is not None:
        page = " LIMIT ? OFFSET ?"
        params = [*params, int(limit), int(offset)]
    rows = reader.execute(
        f"SELECT {key} AS k, {_SUMS} FROM generations WHERE {where} GROUP BY {key} ORDER BY {ordering}{page}", params)
    groups = [_totals(_shown(row[0]), row[1:]) for row in rows]
    if percentiles and groups:
        keys = [None if g.key == NONE_KEY else g.key for g in groups] if limit is not None else None
        latency = percentiles_of(reader, "duration_s", LATENCY_PERCENTILES, filters, by=by, keys=keys)
        ttfc = percentiles_of(reader, "ttfc_s", TTFC_PERCENTILES, filters, by=by, keys=keys)
        for group in groups:
            name = None if group.key == NONE_KEY else group.key
            group.latency_percentiles = latency.get(name, {p: None for p in LATENCY_PERCENTILES})
            group.ttfc_percentiles = ttfc.get(name, {p: None for p in TTFC_PERCENTILES})
    return groups


@dataclass
class Bucket:
    """One time bucket of a series: its start, the group (None when not split) and its figures."""

    start_unix_nano: int
    key: str | None
    totals: Totals


def series(reader: StoreReader, bucket_s: float, filters: Filters = EVERYTHING, *, by: str | None = None,
           percentiles: bool = True) -> list[Bucket]:
    """Figures per time bucket of ``bucket_s`` seconds (aligned on the Unix epoch), split by ``by``.

    Buckets with no call are absent. Ordered by time, then group key.
    """
    width = max(1, int(bucket_s * 1_000_000_000))
    start = f"((time_unix_nano / {width}) * {width})"
    key = group_key(by, reader.engine) if by else "NULL"
    where, params = filters.where(reader.engine)
    rows = reader.execute(
        f"SELECT {start} AS b, {key} AS k, {_SUMS} FROM generations WHERE {where} "
        f"GROUP BY {start}, {key} ORDER BY 1, ({key} IS NULL), {reader.binary_order(key)}", params)
    buckets = [Bucket(int(row[0]), _shown(row[1]) if by else None, _totals(None, row[2:])) for row in rows]
    if percentiles and buckets:
        latency = percentiles_of(reader, "duration_s", LATENCY_PERCENTILES, filters, by=by, bucket_ns=width)
        ttfc = percentiles_of(reader, "ttfc_s", TTFC_PERCENTILES, filters, by=by, bucket_ns=width)
        for bucket in buckets:
            name = (bucket.start_unix_nano, None if bucket.key in (None, NONE_KEY) else bucket.key)
            bucket.totals.key = bucket.key
            bucket.totals.latency_percentiles = latency.get(name, {})
            bucket.totals.ttfc_percentiles = ttfc.get(name, {})
    return buckets


def percentiles_of(reader: StoreReader, column: str, points: Sequence[int], filters: Filters = EVERYTHING, *,
                   by: str | None = None, keys: Sequence[str | None] | None = None,
                   bucket_ns: int | None = None) -> dict[Any, dict[int, float | None]]:
    """Percentiles ``points`` (1..99) of ``column`` per group: ``{key: {p: value}}``.

    The key is None without ``by``; ``(bucket_start, key)`` with ``bucket_ns``. Rows whose
    ``column`` is NULL do not count. ``keys`` limits the work to those groups.
    """
    where, params = filters.where(reader.engine)
    group = group_key(by, reader.engine) if by else "NULL"
    if keys is not None:
        named = [k for k in keys if k is not None]
        alternatives = [f"{group} IN ({', '.join('?' * len(named))})"] if named else []
        if None in keys:
            alternatives.append(f"{group} IS NULL")
        where += f" AND ({' OR '.join(alternatives) or '1=0'})"
        params = [*params, *named]
    bucket = f"((time_unix_nano / {int(bucket_ns)}) * {int(bucket_ns)})" if bucket_ns else "0"
    source = (f"SELECT {bucket} AS b, {group} AS k, {column} AS x FROM generations "
              f"WHERE {where} AND {column} IS NOT NULL")
    fractions = [p / 100 for p in points]
    result: dict[Any, dict[int, float | None]] = {}
    for row in reader.percentile_rows(source, params, fractions):
        b, k, values = row
        result[(int(b), k) if bucket_ns else k] = dict(zip(points, values, strict=True))
    return result
