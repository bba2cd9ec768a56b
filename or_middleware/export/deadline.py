"""One total time bound for one send, below HTTP: every socket operation gets what is left.

httpx's (and httpcore's) timeouts are per operation: a collector that trickles one byte every
two seconds never trips a ten-second read timeout, and an export would last forever. Here each
socket operation asks :func:`time_left` for ``min(its own timeout, time left until the
deadline)``, which fails with the caller's timeout error once nothing is left, so a send ends by
its deadline however the peer behaves (the httpcore network backend that does so lives in
:mod:`export.http_transport`, so this module imports no HTTP library).

The deadline is per send (a context variable set around it), so pooled keep-alive connections
are bounded by whichever send uses them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar

_DEADLINE: ContextVar[float | None] = ContextVar("or_middleware_send_deadline", default=None)


@contextlib.contextmanager
def send_deadline(deadline: float) -> Iterator[None]:
    """Bound every socket operation in this block by ``deadline`` (``time.monotonic()`` seconds)."""
    token = _DEADLINE.set(deadline)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def time_left(timeout: float | None, expired: type[Exception]) -> float | None:
    """What one socket operation may take: its own ``timeout`` or the time left, whichever is
    less; raises ``expired`` when the send's deadline (or the shutdown budget) has passed."""
    deadline = _DEADLINE.get()
    if _closing_by is not None:  # shutdown began after this send did: it ends by the budget too
        deadline = _closing_by if deadline is None else min(deadline, _closing_by)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired("the send's total time ran out")
    return left if timeout is None else min(timeout, left)


# -- the process's shutdown budget ---------------------------------------------------------------

_closing_by: float | None = None


def close_by(deadline: float | None) -> None:
    """From now on no send lasts beyond ``deadline`` (monotonic seconds; None: no such bound).
    Set at shutdown, so the flush of every destination together fits one budget."""
    global _closing_by
    _closing_by = deadline


def closing_by() -> float | None:
    return _closing_by


def attempt_deadline(timeout: float) -> float:
    """When one attempt must be over: its own timeout, or the shutdown budget if that ends first."""
    deadline = time.monotonic() + timeout
    return deadline if _closing_by is None else min(deadline, _closing_by)


@contextlib.contextmanager
def closing(deadline: float) -> Iterator[None]:
    """Shutdown (or the flush before it) is under way until ``deadline``: every send ends by then,
    retries that would end later are not waited for (the batch is spooled), the spool is not
    re-sent (it stays for the next start)."""
    global _closing_by
    previous = _closing_by
    _closing_by = deadline if previous is None else min(previous, deadline)
    try:
        yield
    finally:
        _closing_by = previous


def seconds_left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())
