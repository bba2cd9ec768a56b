"""Which generations a read looks at: a time range, dimensions equal to a value, minimum cost or latency.

A *dimension* is what ``report --by`` groups by: ``model``, ``request_model``, ``user``, ``session``,
``route``, ``provider``, ``api``, ``operation``, ``status``, or ``metadata.KEY`` (a key of the
request's custom trace metadata). Empty values and missing ones are the same group, ``(none)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from or_middleware.store.schema import MODEL
from or_middleware.store.sql import Engine, metadata_value

# dimension -> SQL expression over a generations row
DIMENSIONS: dict[str, str] = {
    "model": MODEL,  # the model that served, else the one asked for
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
_NANO_RANGE = (-(2**63), 2**63 - 1)  # what a 64-bit column (and a SQLite parameter) holds


def time_bound(unix_nano: int) -> int:
    """``unix_nano`` held to a 64-bit integer: the year 2999 (past 2262) compares as the latest time
    instead of failing to bind."""
    return max(_NANO_RANGE[0], min(_NANO_RANGE[1], int(unix_nano)))


def dimension_expression(by: str, engine: Engine) -> str:
    """The SQL expression of dimension ``by`` (ValueError naming the accepted ones otherwise)."""
    if by.startswith(METADATA_PREFIX) and len(by) > len(METADATA_PREFIX):
        return metadata_value(engine, by[len(METADATA_PREFIX):])
    try:
        return DIMENSIONS[by]
    except KeyError:
        accepted = ", ".join([*DIMENSIONS, "metadata.KEY"])
        raise ValueError(f"--by {by!r}: accepted {accepted}") from None


def group_key(by: str, engine: Engine) -> str:
    """Dimension ``by`` as a group key: text, with '' and NULL both NULL (shown as ``(none)``)."""
    return f"NULLIF(CAST({dimension_expression(by, engine)} AS TEXT), '')"


@dataclass(frozen=True)
class Filters:
    """Which generations to read. Every field is optional; all given ones must hold.

    ``equals`` maps a dimension to the value it must have (``None`` or ``"(none)"``: no value),
    e.g. ``{"model": "openai/gpt-4o", "metadata.team": "search", "status": "error"}``.
    Times are Unix nanoseconds of the call's start: ``since`` inclusive, ``until`` exclusive.
    """

    since_unix_nano: int | None = None
    until_unix_nano: int | None = None
    equals: Mapping[str, str | None] = field(default_factory=dict)
    min_cost_usd: float | None = None
    min_duration_s: float | None = None
    trace_id: str | None = None

    def only_time(self) -> bool:
        """Whether these filters select a time range and nothing else."""
        return not self.equals and self.min_cost_usd is None and self.min_duration_s is None and self.trace_id is None

    def where(self, engine: Engine) -> tuple[str, list[Any]]:
        """``(condition, parameters)`` over the generations table (``1=1`` when nothing is filtered)."""
        conditions, params = ["1=1"], []
        if self.since_unix_nano:
            conditions.append("time_unix_nano >= ?")
            params.append(time_bound(self.since_unix_nano))
        if self.until_unix_nano is not None:
            conditions.append("time_unix_nano < ?")
            params.append(time_bound(self.until_unix_nano))
        for by, value in self.equals.items():
            key = group_key(by, engine)
            if value is None or value == NONE_KEY:
                conditions.append(f"{key} IS NULL")
            elif by in DIMENSIONS:  # a column (or COALESCE of two): an index on it can serve
                conditions.append(f"{DIMENSIONS[by]} = ?")
                params.append(str(value))
            else:
                conditions.append(f"{key} = ?")
                params.append(str(value))
        if self.min_cost_usd is not None:
            conditions.append("cost_usd >= ?")
            params.append(float(self.min_cost_usd))
        if self.min_duration_s is not None:
            conditions.append("duration_s >= ?")
            params.append(float(self.min_duration_s))
        if self.trace_id is not None:
            conditions.append("trace_id = ?")
            params.append(self.trace_id)
        return " AND ".join(conditions), params


EVERYTHING = Filters()  # no filter: every generation
