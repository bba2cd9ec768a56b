"""The optional per-user rate limit (``OR_MIDDLEWARE_USER_RATE_LIMIT=60/min``).

The only feature allowed to change the app's behaviour, and only when set: a request from a
user who already made ``requests`` requests in the last ``period_s`` seconds is answered
429 with ``Retry-After`` by the middleware, so the app (and its LLM call) never runs.
Requests without a user id are not limited. The count is per process: with N workers a user
gets up to N times the limit.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from or_middleware.keys import bounded_key

_UNITS = {
    "s": 1.0, "sec": 1.0, "second": 1.0,
    "m": 60.0, "min": 60.0, "minute": 60.0,
    "h": 3600.0, "hr": 3600.0, "hour": 3600.0,
    "d": 86400.0, "day": 86400.0,
}
_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d*\.?\d*)\s*([a-z]+?)s?\s*$")
ACCEPTED = "<requests>/<period>, e.g. 60/min, 1000/hour, 10/30s (units: s, min, hour, day)"


@dataclass(frozen=True)
class RateLimit:
    requests: int
    period_s: float

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        match = _SPEC.match(text.lower())
        unit = _UNITS.get(match.group(3)) if match else None
        if match is None or unit is None:
            raise ValueError(f"expected {ACCEPTED}")
        count = int(match.group(1))
        multiple = float(match.group(2)) if match.group(2) else 1.0
        if count < 1 or multiple <= 0:
            raise ValueError(f"the limit and the period must be positive; expected {ACCEPTED}")
        return cls(count, multiple * unit)

    def __str__(self) -> str:
        return f"{self.requests} per {self.period_s:g}s"


# What one tracked user costs: its key (bounded), the dict entry, the deque, and per timestamp
# a float object and the deque's slot. Used to turn the byte budget into a number of users.
_USER_BYTES = 450
_TIMESTAMP_BYTES = 40
MAX_STATE_BYTES = 64 * 1024 * 1024


class UserRateLimiter:
    """A sliding-window log per user: at most ``requests`` in any ``period_s`` window.

    Memory is bounded in bytes, whatever the clients send: a user id longer than 128 characters
    is kept as a prefix and a hash (:func:`or_middleware.keys.bounded_key`), and the number of
    users kept is what fits in ``max_bytes`` (64 MiB) at ``requests`` timestamps each; the least
    recently seen go first, which can only make the limit more lenient.
    """

    def __init__(self, limit: RateLimit, *, max_users: int = 100_000, max_bytes: int = MAX_STATE_BYTES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._max_users = max(1, min(max_users, max_bytes // (_USER_BYTES + _TIMESTAMP_BYTES * limit.requests)))
        self._clock = clock
        self._lock = threading.Lock()
        self._users: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, user: str | None) -> float | None:
        """None: allowed (and counted). Else the seconds until this user may make a request again.
        Requests without a user are never limited."""
        if not user:
            return None
        user = bounded_key(user)
        now = self._clock()
        with self._lock:
            calls = self._users.get(user)
            if calls is None:
                calls = self._users[user] = deque(maxlen=self.limit.requests)
                if len(self._users) > self._max_users:
                    self._users.popitem(last=False)
            else:
                self._users.move_to_end(user)
            if len(calls) == self.limit.requests:
                wait = calls[0] + self.limit.period_s - now
                if wait > 0:
                    return wait
            calls.append(now)
            return None


def too_many_requests(limit: RateLimit, wait_s: float) -> tuple[list[tuple[str, str]], bytes]:
    """Headers and body of the 429 answer, in OpenRouter's error shape."""
    retry_after = max(1, math.ceil(wait_s))
    body = json.dumps(
        {"error": {"code": 429, "message": f"Too many requests for this user ({limit}); retry in {retry_after}s"}}
    ).encode()
    headers = [
        ("content-type", "application/json"),
        ("retry-after", str(retry_after)),
        ("content-length", str(len(body))),
    ]
    return headers, body


async def send_asgi_429(send: Callable[[dict[str, Any]], Any], limit: RateLimit, wait_s: float) -> None:
    headers, body = too_many_requests(limit, wait_s)
    await send({
        "type": "http.response.start",
        "status": 429,
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
    })
    await send({"type": "http.response.body", "body": body})


def wsgi_429(start_response: Callable[..., Any], limit: RateLimit, wait_s: float) -> list[bytes]:
    headers, body = too_many_requests(limit, wait_s)
    start_response("429 Too Many Requests", headers)
    return [body]
