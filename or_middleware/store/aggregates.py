"""Figures over many generations, computed by the database: sums and counts, percentiles, time buckets.

Nothing here loads rows into Python to count them: each function runs one aggregate query, one
pass over the selected rows whatever their number, percentiles included: they are aggregates of
the same GROUP BY (exact, PERCENTILE_CONT; see :mod:`or_middleware.store.percentiles`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from or_middleware.store.filters import EVERYTHING, NONE_KEY, Filters, group_key
from or_middleware.store.percentiles import WALK_SCHEMA, decode, walk

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
    output_seconds: float = 0.0  # summed duration of the calls that produced output tokens
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
    "SUM(CASE WHEN output_tokens > 0 THEN duration_s END), MIN(time_unix_nano), MAX(time_unix_nano)"
)
_SUMS_COUNT = 11
_ORDER = {  # SQL of each group order, over the _SUMS aggregates
    "cost": "COALESCE(SUM(cost_usd), 0) DESC, COUNT(*) DESC",
    "requests": "COUNT(*) DESC, COALESCE(SUM(cost_usd), 0) DESC",
    "recent": "MAX(time_unix_nano) DESC",
}


def _figures(reader: StoreReader, percentiles: str | None) -> str:
    """The select list of a group's figures: the sums, then what :func:`_with_percentiles` reads back:
    ``aggregate`` the percentile aggregates, ``walk`` the count of TTFC values (ranks are walked to)."""
    if percentiles == "walk":
        return f"{_SUMS}, COUNT(ttfc_s)"
    if percentiles == "aggregate":
        return (f"{_SUMS}, {reader.percentiles('duration_s', LATENCY_PERCENTILES)}, "
                f"{reader.percentiles('ttfc_s', TTFC_PERCENTILES)}")
    return _SUMS


def _how(reader: StoreReader, filters: Filters, by: str | None, percentiles: bool) -> str | None:
    """How percentiles are computed: walked to in an index where one serves, else an aggregate."""
    if not percentiles:
        return None
    if reader.schema_version >= WALK_SCHEMA and by in (None, "model") and filters.only_time():
        return "walk"
    return "aggregate"


def _settled(total: float | None) -> float:
    """A float sum to 10 significant digits. The engines add rows in different orders, so the same rows
    differ in the last bits (5.039000000000002 vs 5.039); the rounding error of a million-row sum stays
    far below the 10th digit, and no price is that precise."""
    return float(f"{total:.10g}") if total else 0.0


def _totals(key: str | None, row: Sequence[Any]) -> Totals:
    """A group's Totals from the _SUMS columns."""
    requests, errors, tin, tout, cached, reasoning, cost, priced, output_s, first, last = row[:_SUMS_COUNT]
    return Totals(key, int(requests), int(errors or 0), int(tin or 0), int(tout or 0), int(cached or 0),
                  int(reasoning or 0), _settled(cost), int(priced), _settled(output_s),
                  None if first is None else int(first), None if last is None else int(last))


def _with_percentiles(reader: StoreReader, totals: Totals, row: Sequence[Any], how: str | None, filters: Filters,
                      model: str | None = None) -> Totals:
    """``totals`` given its percentiles, from the rest of ``row`` (see :func:`_figures`)."""
    extra = row[_SUMS_COUNT:]
    if how == "aggregate":
        totals.latency_percentiles = decode(extra[0], LATENCY_PERCENTILES)
        totals.ttfc_percentiles = decode(extra[1], TTFC_PERCENTILES)
    elif how == "walk":
        time_where, time_params = filters.where(reader.engine)
        totals.latency_percentiles = walk(reader, "duration_s", LATENCY_PERCENTILES, totals.requests, time_where,
                                          time_params, model)
        totals.ttfc_percentiles = walk(reader, "ttfc_s", TTFC_PERCENTILES, int(extra[0]), time_where, time_params,
                                       model)
    return totals


def _shown(key: Any) -> str:
    return NONE_KEY if key is None else str(key)


def totals(reader: StoreReader, filters: Filters = EVERYTHING, *, percentiles: bool = True) -> Totals:
    """Figures of every generation ``filters`` selects."""
    where, params = filters.where(reader.engine)
    how = _how(reader, filters, None, percentiles)
    with reader.snapshot():  # the walks' counts and ranks from the same rows
        [row] = reader.execute(f"SELECT {_figures(reader, how)} FROM generations WHERE {where}", params)
        return _with_percentiles(reader, _totals(None, row), row, how, filters)


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
    page, paging = "", []
    if limit is not None:
        page, paging = " LIMIT ? OFFSET ?", [int(limit), int(offset)]
    how = _how(reader, filters, by, percentiles)
    with reader.snapshot():
        rows = reader.execute(f"SELECT {key} AS k, {_figures(reader, how)} FROM generations WHERE {where} "
                              f"GROUP BY {key} ORDER BY {ordering}{page}", [*params, *paging])
        groups = []
        for name, *figures in rows:
            group = _totals(_shown(name), figures)
            if how == "walk" and name is None:  # no model, or an empty one: no index holds both, aggregate them
                [figures] = reader.execute(f"SELECT {_figures(reader, 'aggregate')} FROM generations "
                                           f"WHERE {where} AND {key} IS NULL", params)
                groups.append(_with_percentiles(reader, group, figures, "aggregate", filters))
            else:
                groups.append(_with_percentiles(reader, group, figures, how, filters, name))
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
        f"SELECT {start} AS b, {key} AS k, {_figures(reader, 'aggregate' if percentiles else None)} "
        f"FROM generations WHERE {where} "
        f"GROUP BY {start}, {key} ORDER BY 1, ({key} IS NULL), {reader.binary_order(key)}", params)
    buckets = []
    for row in rows:
        name = _shown(row[1]) if by else None
        totals = _totals(name, row[2:])
        buckets.append(Bucket(int(row[0]), name, _with_percentiles(reader, totals, row[2:], "aggregate" if
                                                                   percentiles else None, filters)))
    return buckets
