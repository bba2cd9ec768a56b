"""Query-string parameters of the Explorer's pages: validated once, turned into SQL with bound values only.

A value that does not parse is a ``BadParameter`` (the page answers 400 naming the parameter and
what it accepts). Column names and sort orders come from fixed tables, never from the request.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from urllib.parse import urlencode

from or_middleware.report.figures import GROUPINGS, NONE_KEY
from or_middleware.report.periods import parse_since, to_unix_nano
from or_middleware.store.filters import time_bound
from or_middleware.ui.source import METADATA_PREFIX, Reader

DEFAULT_SINCE = "24h"  # the same default as `or-middleware report`
SINCE_CHOICES = ("1h", "24h", "7d", "30d", "all")
PAGE_SIZES = (25, 50, 100, 200)
MAX_PAGE = 100_000
MAX_TEXT = 512  # longest filter value taken (a user id is <= 128, a session id <= 256 on OpenRouter)

# the filterable dimensions, with the SQL that `report --by` groups on (a group key clicked = a filter)
TEXT_FILTERS: dict[str, str] = {
    "model": GROUPINGS["model"],
    "provider": GROUPINGS["provider"],
    "user": GROUPINGS["user"],
    "session": GROUPINGS["session"],
    "route": GROUPINGS["route"],
    "operation": GROUPINGS["operation"],
}
SORTS: dict[str, str] = {
    "time": "time_unix_nano",
    "cost": "cost_usd",
    "latency": "duration_s",
    "ttfc": "ttfc_s",
    "input": "input_tokens",
    "output": "output_tokens",
    "model": GROUPINGS["model"],
    "user": "user_id",
}
NEVER_NULL = frozenset({"time", "latency"})  # NOT NULL columns (store/schema.py)
BY_CHOICES = (*GROUPINGS, "metadata.KEY")


class BadParameter(ValueError):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


def _text(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name, "").strip()
    if not value:
        return None
    if len(value) > MAX_TEXT:
        raise BadParameter(name, f"at most {MAX_TEXT} characters")
    return value


def _number(params: Mapping[str, str], name: str) -> float | None:
    value = _text(params, name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise BadParameter(name, "a number, e.g. 0.01") from None
    if not math.isfinite(number) or number < 0:
        raise BadParameter(name, "a finite number >= 0")
    return number


def _choice(params: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = params.get(name) or default
    if value not in choices:
        raise BadParameter(name, f"one of {', '.join(choices)}")
    return value


def _integer(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    value = params.get(name)
    if not value:
        return default
    # isascii: '²'.isdigit() is True; the length cap keeps int() away from 10,000-digit strings
    if not (value.isascii() and value.isdigit() and len(value) <= 9) or not low <= int(value) <= high:
        raise BadParameter(name, f"a whole number from {low} to {high}")
    return int(value)


def parse_by(params: Mapping[str, str]) -> str:
    """A ``report --by`` grouping. report.figures writes a metadata key into SQL text (a JSON path),
    so a key from a request is held to characters that cannot leave that string: no quotes,
    backslashes or control characters."""
    by = params.get("by") or "model"
    if by in GROUPINGS:
        return by
    key = by[len(METADATA_PREFIX):] if by.startswith(METADATA_PREFIX) else ""
    if key and len(key) <= MAX_TEXT and not any(c in "'\"\\" or ord(c) < 32 for c in key):
        return by
    raise BadParameter("by", f"one of {', '.join(BY_CHOICES)} (a metadata key without quotes)")


@dataclass(frozen=True)
class TimeRange:
    since: str = DEFAULT_SINCE  # as typed: 24h, 7d, an ISO date/time, all
    since_unix_nano: int = 0
    until: str | None = None
    until_unix_nano: int | None = None

    @classmethod
    def parse(cls, params: Mapping[str, str], now: datetime | None = None) -> TimeRange:
        now = now or datetime.now().astimezone()
        since = _text(params, "since") or DEFAULT_SINCE
        until = _text(params, "until")
        try:
            since_nano = time_bound(to_unix_nano(parse_since(since, now)))
        except (ValueError, OverflowError) as exc:  # OverflowError: 99999999999d ago is before year 1
            raise BadParameter("since", str(exc)) from None
        until_nano = None
        if until is not None:
            try:
                moment = parse_since(until, now)
            except (ValueError, OverflowError) as exc:
                raise BadParameter("until", str(exc)) from None
            until_nano = None if moment is None else time_bound(to_unix_nano(moment))
        return cls(since, since_nano, until, until_nano)

    def clauses(self) -> tuple[list[str], list[object]]:
        clauses: list[str] = ["time_unix_nano >= ?"]
        values: list[object] = [self.since_unix_nano]
        if self.until_unix_nano is not None:
            clauses.append("time_unix_nano < ?")
            values.append(self.until_unix_nano)
        return clauses, values

    def where(self) -> tuple[str, list[object]]:
        clauses, values = self.clauses()
        return " AND ".join(clauses), values


@dataclass(frozen=True)
class GenerationFilter:
    """Everything the Generations list can be narrowed by."""

    time: TimeRange = field(default_factory=TimeRange)
    text: tuple[tuple[str, str], ...] = ()  # (dimension, value); NONE_KEY matches no value
    status: str | None = None
    metadata: tuple[str, str] | None = None  # key, value
    min_cost: float | None = None
    min_latency: float | None = None

    @classmethod
    def parse(cls, params: Mapping[str, str], now: datetime | None = None) -> GenerationFilter:
        text = tuple((name, value) for name in TEXT_FILTERS if (value := _text(params, name)) is not None)
        status = _text(params, "status")
        if status not in (None, "ok", "error"):
            raise BadParameter("status", "ok or error")
        metadata = None
        if (pair := _text(params, "meta")) is not None:
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise BadParameter("meta", "KEY=VALUE, e.g. team=search")
            metadata = (key, value)
        return cls(TimeRange.parse(params, now), text, status, metadata,
                   _number(params, "min_cost"), _number(params, "min_latency"))

    def where(self, reader: Reader | None = None) -> tuple[str, list[object]]:
        """SQL over generations rows; ``reader`` (its engine) is needed for a metadata filter."""
        clauses, values = self.time.clauses()
        for name, value in self.text:
            expression = TEXT_FILTERS[name]
            if value == NONE_KEY:
                clauses.append(f"({expression} IS NULL OR {expression} = '')")
            else:
                clauses.append(f"{expression} = ?")
                values.append(value)
        if self.status:
            clauses.append("status = ?")
            values.append(self.status)
        if self.metadata:
            if reader is None:
                raise TypeError("a metadata filter needs the reader's engine")
            clauses.append(reader.metadata_equals(self.metadata[0]))
            values.append(self.metadata[1])
        if self.min_cost is not None:
            clauses.append("cost_usd >= ?")
            values.append(self.min_cost)
        if self.min_latency is not None:
            clauses.append("duration_s >= ?")
            values.append(self.min_latency)
        return " AND ".join(clauses), values

    def query(self) -> dict[str, str]:
        """The filter as query-string parameters (for links that keep it)."""
        found: dict[str, str] = {"since": self.time.since}
        if self.time.until:
            found["until"] = self.time.until
        found.update(self.text)
        if self.status:
            found["status"] = self.status
        if self.metadata:
            found["meta"] = f"{self.metadata[0]}={self.metadata[1]}"
        if self.min_cost is not None:
            found["min_cost"] = f"{self.min_cost:g}"
        if self.min_latency is not None:
            found["min_latency"] = f"{self.min_latency:g}"
        return found

    def with_text(self, name: str, value: str) -> GenerationFilter:
        return replace(self, text=(*((n, v) for n, v in self.text if n != name), (name, value)))


@dataclass(frozen=True)
class Paging:
    sort: str = "time"
    descending: bool = True
    page: int = 1
    size: int = 50

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> Paging:
        sort = _choice(params, "sort", tuple(SORTS), "time")
        order = _choice(params, "order", ("desc", "asc"), "desc")
        size = _integer(params, "size", 50, 1, max(PAGE_SIZES))
        return cls(sort, order == "desc", _integer(params, "page", 1, 1, MAX_PAGE), size)

    def order_by(self) -> str:
        direction = "DESC" if self.descending else "ASC"
        column = SORTS[self.sort]
        if self.sort in NEVER_NULL:  # no NULLS LAST: an index in the column's order serves it (PostgreSQL's too)
            return f"{column} {direction}, id {direction}"
        return f"{column} {direction} NULLS LAST, id {direction}"  # calls without a value at the end

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size


def link(path: str, params: Mapping[str, str | int]) -> str:
    """``path?query`` with every value URL-encoded (the template escapes it again for HTML)."""
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    return f"{path}?{query}" if query else path
