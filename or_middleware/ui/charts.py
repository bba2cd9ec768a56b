"""Figures over time for the charts: buckets and percentiles computed in SQL, a few rows back per bucket.

Percentiles over time are the store's percentile aggregates (:mod:`or_middleware.store.percentiles`,
what ``report`` uses) grouped by bucket, so a bucket holding every call of the range gives exactly
the report's figure.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from or_middleware.report.figures import NONE_KEY
from or_middleware.store.percentiles import decode
from or_middleware.ui.source import Reader

OTHER_KEY = "(other)"
MAX_SERIES = 6  # groups drawn one by one; the rest are summed as (other)
NICE_STEPS_S = (1, 5, 10, 30, 60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86_400, 7 * 86_400, 30 * 86_400)
MAX_BUCKETS = 72


def bucket_width_ns(first_nano: int, last_nano: int) -> int:
    """The smallest nice step that cuts [first, last] into at most MAX_BUCKETS buckets."""
    span_s = max(0, last_nano - first_nano) / 1e9
    step = next((s for s in NICE_STEPS_S if span_s / s <= MAX_BUCKETS), None)
    if step is None:  # years of data: whole days, as many as it takes
        step = 86_400 * math.ceil(span_s / MAX_BUCKETS / 86_400)
    return step * 1_000_000_000


def keyed(expression: str, keys: Sequence[str]) -> tuple[str, list[object]]:
    """SQL naming each row's group: one of ``keys``, (none), or (other); with its bound values."""
    text = f"CAST({expression} AS TEXT)"
    if not keys:
        return f"CASE WHEN COALESCE({text}, '') = '' THEN '{NONE_KEY}' ELSE '{OTHER_KEY}' END", []
    marks = ", ".join("?" * len(keys))
    return (f"CASE WHEN COALESCE({text}, '') = '' THEN '{NONE_KEY}' WHEN {text} IN ({marks}) THEN {text} "
            f"ELSE '{OTHER_KEY}' END", list(keys))


@dataclass
class Series:
    """Bucket starts (unix seconds) and, per chart, one list of values per named line."""

    times: list[float] = field(default_factory=list)
    lines: dict[str, dict[str, list[float | None]]] = field(default_factory=dict)
    step_s: float = 60.0

    def as_dict(self) -> dict[str, object]:
        return {"times": self.times, "step": self.step_s, "charts": self.lines}


def percentiles(reader: Reader, value: str, parts: Sequence[str], part_values: Sequence[object], where: str,
                values: Sequence[object], ps: Sequence[int]) -> dict[tuple[object, ...], dict[int, float | None]]:
    """The ps-th percentiles of ``value`` per partition (the tuple of the ``parts`` SQL expressions' values).

    ``part_values`` are the bound values of the ``parts`` expressions, ``values`` those of ``where``.
    """
    selected = ", ".join(f"{part} AS part{i}" for i, part in enumerate(parts))
    grouping = ", ".join(str(i + 1) for i in range(len(parts)))
    sql = (f"SELECT {selected}, {reader.store.percentiles(value, ps)} FROM generations "
           f"WHERE {where} GROUP BY {grouping}")
    return {tuple(part): decode(found, ps) for *part, found in reader.execute(sql, [*part_values, *values])
            if found is not None}


def over_time(reader: Reader, *, where: str, values: Sequence[object], by: str, keys: Sequence[str],
              first_nano: int, last_nano: int) -> Series:
    """Cost, calls, tokens and latency per time bucket, split into the groups ``keys`` of ``by``."""
    width = bucket_width_ns(first_nano, last_nano)
    key_sql, key_values = keyed(reader.dimension(by), keys)
    series = Series()
    buckets: dict[int, dict[str, tuple[float, ...]]] = defaultdict(dict)
    p95 = reader.store.percentiles("duration_s", (95,))
    p95_by: dict[tuple[int, str], float | None] = {}
    sql = (f"SELECT time_unix_nano / {width} AS b, {key_sql} AS k, COUNT(*), COALESCE(SUM(cost_usd), 0), "
           "COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0), "
           f"COALESCE(SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END), 0), {p95} "
           f"FROM generations WHERE {where} GROUP BY 1, 2")
    for b, k, calls, cost, tin, tout, errors, latency in reader.execute(sql, [*key_values, *values]):
        buckets[int(b)][str(k)] = (int(calls), float(cost), int(tin), int(tout), int(errors))  # numeric -> numbers
        p95_by[(int(b), str(k))] = decode(latency, (95,))[95]
    if not buckets:
        return series
    first, last = min(buckets), max(buckets)
    order = list(range(first, last + 1))
    series.times = [b * width / 1e9 for b in order]
    series.step_s = width / 1e9
    names = [*keys, *sorted({k for per in buckets.values() for k in per} - set(keys))]
    for chart, index in (("cost", 1), ("calls", 0), ("errors", 4)):
        series.lines[chart] = {name: [buckets[b].get(name, (0,) * 5)[index] for b in order] for name in names}
    series.lines["tokens"] = {
        "input": [sum(v[2] for v in buckets[b].values()) for b in order],
        "output": [sum(v[3] for v in buckets[b].values()) for b in order],
    }
    bucket = f"time_unix_nano / {width}"
    overall = percentiles(reader, "duration_s", [bucket], [], where, values, (50, 95, 99))
    series.lines["latency"] = {f"p{p}": [overall.get((b,), {}).get(p) for b in order] for p in (50, 95, 99)}
    series.lines["latency_p95_by"] = {name: [p95_by.get((b, name)) for b in order] for name in names}
    return series
