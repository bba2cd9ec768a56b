"""``--since 24h|7d|ISO`` and ``--older-than 90d``: points and spans of time given on the command line."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)\s*$", re.IGNORECASE)
_UNIT = {"s": "seconds", "m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks"}
AGE_HELP = "a number and a unit: s, m, h, d, w (e.g. 90d, 24h)"


def parse_age(text: str) -> timedelta:
    match = _AGE.match(text)
    if match is None:
        raise ValueError(f"{text!r}: expected {AGE_HELP}")
    return timedelta(**{_UNIT[match.group(2).lower()]: float(match.group(1))})


def parse_since(text: str, now: datetime) -> datetime | None:
    """``24h`` / ``7d`` before ``now``, an ISO date or time (local time unless it names a zone), or ``all``."""
    if text.strip().lower() == "all":
        return None
    if _AGE.match(text):
        return now - parse_age(text)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r}: expected {AGE_HELP}, an ISO date/time (2024-05-01, 2024-05-01T09:30) "
                         "or all") from None
    return moment if moment.tzinfo else moment.astimezone()  # naive: the user's local time


def to_unix_nano(moment: datetime | None) -> int:
    return 0 if moment is None else int(moment.timestamp() * 1_000_000_000)


def local_time(unix_nano: int) -> str:
    return datetime.fromtimestamp(unix_nano / 1e9, tz=UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")
