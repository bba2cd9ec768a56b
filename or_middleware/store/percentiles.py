"""Percentiles, exact: walked to in an index where one serves, else aggregates of the sums' own pass.

Every percentile of the store (``report``, the UI's figures and charts) comes from here, exact and
interpolated linearly between the two closest ranks: PERCENTILE_CONT, as numpy's default and
``statistics.quantiles(method="inclusive")``. For ``n`` values sorted ``x[0..n-1]`` and a fraction
``f``, the position is ``f * (n - 1)``; between ranks ``lo = floor`` and ``lo + 1`` the value is
``x[lo] + (x[lo + 1] - x[lo]) * (position - lo)``. NULLs do not count; no value gives None.

- Over a time range, overall or per model (the overview's, the Models page's and ``report``'s
  figures), on a store of schema 5+: the rank is walked to (:func:`walk`). An index holds the
  values in order (``generations_duration``: duration, time; ``generations_model_duration``: model,
  duration, time; the same for TTFC); ``ORDER BY duration_s LIMIT 2 OFFSET k`` steps through index
  entries only and stops at rank k, from the low end for p <= 50 and from the high end above, so
  p99 of a million calls reads ~10,000 entries and p50 half of them (SQLite ~50 ns an entry;
  PostgreSQL an index-only scan). The count comes from the sums' query in the same snapshot.
- Otherwise, in the same GROUP BY as the sums: PostgreSQL's ``percentile_cont(ARRAY[...]) WITHIN
  GROUP (ORDER BY column)``; on SQLite, which has none, ``or_middleware_pNN_NN``, an aggregate the
  reader's connection is given, whose step is ``array.append`` (8 bytes a value: a million calls
  hold 8 MB while the query runs) and whose final step sorts them once and picks the ranks as
  above. Sorting every group's values is what a walk avoids: on a million rows PostgreSQL spills
  that sort to disk (``work_mem``) and gives up its hash aggregate.
"""

from __future__ import annotations

import math
import sqlite3
from array import array
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from or_middleware.store.schema import MODEL
from or_middleware.store.sql import Engine

if TYPE_CHECKING:
    from or_middleware.store.reader import StoreReader

Points = Sequence[int]  # percents, 1..99


def _name(points: Points) -> str:
    return "or_middleware_p" + "_".join(str(int(p)) for p in points)


def expression(engine: Engine, column: str, points: Points) -> str:
    """The SQL aggregate giving percentiles ``points`` of ``column`` (decode it with :func:`decode`)."""
    if engine == "postgresql":
        fractions = ", ".join(repr(p / 100) for p in points)
        return f"percentile_cont(ARRAY[{fractions}]::float8[]) WITHIN GROUP (ORDER BY {column})"
    # NULLs never reach the step: it is array.append itself, called by SQLite with no Python frame
    return f"{_name(points)}({column}) FILTER (WHERE {column} IS NOT NULL)"


def register(connection: sqlite3.Connection, points: Points) -> None:
    """Give the SQLite ``connection`` the aggregate :func:`expression` names for ``points``."""
    fractions = tuple(p / 100 for p in points)

    class Aggregate:
        __slots__ = ("step", "values")

        def __init__(self) -> None:
            self.values = array("d")
            self.step = self.values.append

        def finalize(self) -> str | None:
            return encode(pick(sorted(self.values), fractions))

    connection.create_aggregate(_name(points), 1, Aggregate)


def pick(ordered: Sequence[float], fractions: Sequence[float]) -> list[float] | None:
    """PERCENTILE_CONT of the sorted ``ordered`` at each fraction (None when there is no value)."""
    n = len(ordered)
    if n == 0:
        return None
    found = []
    for f in fractions:
        position = f * (n - 1)
        low = math.floor(position)
        high = math.ceil(position)
        if low == high:
            found.append(float(ordered[low]))
        else:
            found.append(ordered[low] + (ordered[high] - ordered[low]) * (position - low))
    return found


def encode(values: list[float] | None) -> str | None:
    """SQLite returns the values as text: repr() round-trips every double exactly."""
    return None if values is None else " ".join(repr(v) for v in values)


def decode(raw: Any, points: Points) -> dict[int, float | None]:
    """``{p: value}`` from what :func:`expression` returned (a PostgreSQL array, a SQLite text or NULL)."""
    if raw is None:
        return {p: None for p in points}
    values = raw.split() if isinstance(raw, str) else raw
    return {p: None if v is None else float(v) for p, v in zip(points, values, strict=True)}


# -- walking an index to a rank (SQLite) ---------------------------------------------------------

# column -> (index over (column, time), index over (model, column, time)), created by schema migration 5
WALK_INDEXES = {
    "duration_s": ("generations_duration", "generations_model_duration"),
    "ttfc_s": ("generations_ttfc", "generations_model_ttfc"),
}
WALK_SCHEMA = 5


def walk(reader: StoreReader, column: str, points: Points, count: int, time_where: str, time_params: list[Any],
         model: str | None = None) -> dict[int, float | None]:
    """PERCENTILE_CONT ``points`` of ``column`` over ``count`` rows (those with a value) matching
    ``time_where`` (conditions on ``time_unix_nano`` only) and, when given, ``model``, by walking
    the column's index to each rank. ``count`` must be their number, read in the same snapshot."""
    if count <= 0:
        return {p: None for p in points}
    index = WALK_INDEXES[column][0 if model is None else 1]
    where, params = f"{column} IS NOT NULL AND {time_where}", list(time_params)
    if model is not None:
        where += f" AND {MODEL} = ?"
        params.append(model)
    found: dict[int, float | None] = {}
    for p in points:
        position = p / 100 * (count - 1)
        low, high = math.floor(position), math.ceil(position)
        if p <= 50:  # from the low end: x[low], x[high]
            order, offset = "ASC", low
        else:  # from the high end: x[high], x[low]
            order, offset = "DESC", count - 1 - high
        # SQLite is told the index; PostgreSQL's planner finds it (an index-only scan) on its own
        indexed = f" INDEXED BY {index}" if reader.engine == "sqlite" else ""
        rows = reader.execute(f"SELECT {column} FROM generations{indexed} WHERE {where} "
                              f"ORDER BY {column} {order} LIMIT ? OFFSET ?", [*params, high - low + 1, offset])
        values = sorted(float(v) for (v,) in rows)
        if len(values) != high - low + 1:  # the rows changed under us (cannot happen inside one snapshot)
            found[p] = None
        elif low == high:
            found[p] = values[0]
        else:
            found[p] = values[0] + (values[1] - values[0]) * (position - low)
    return found
