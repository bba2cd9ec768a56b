"""One total time bound for one send, below HTTP: every socket operation gets what is left.

httpx's (and httpcore's) timeouts are per operation: a collector that trickles one byte every
two seconds never trips a ten-second read timeout, and an export would last forever. Here a
network backend hands httpcore streams whose every connect, read and write is given
``min(its own timeout, time left until the deadline)``, and fails with httpcore's own timeout
error once nothing is left, so a send ends by its deadline however the peer behaves.

The deadline is per send (a context variable set around it), so pooled keep-alive connections
are bounded by whichever send uses them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any

import httpcore

_DEADLINE: ContextVar[float | None] = ContextVar("or_middleware_send_deadline", default=None)
_WRITE_SLICE = 64 * 1024  # a write is sliced so each slice gets the time left, not the whole timeout


@contextlib.contextmanager
def send_deadline(deadline: float) -> Iterator[None]:
    """Bound every socket operation in this block by ``deadline`` (``time.monotonic()`` seconds)."""
    token = _DEADLINE.set(deadline)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _left(timeout: float | None, expired: type[Exception]) -> float | None:
    deadline = _DEADLINE.get()
    if _closing_by is not None:  # shutdown began after this send did: it ends by the budget too
        deadline = _closing_by if deadline is None else min(deadline, _closing_by)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired("the send's total time ran out")
    return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        view = memoryview(buffer)
        for start in range(0, len(view), _WRITE_SLICE):
            self._inner.write(bytes(view[start:start + _WRITE_SLICE]), _left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname, _left(timeout, httpcore.ConnectTimeout))
        return DeadlineStream(inner)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's own synchronous backend, with every stream bounded by the send's deadline."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(host, port, _left(timeout, httpcore.ConnectTimeout), local_address,
                                         socket_options)
        return DeadlineStream(stream)

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        stream = self._inner.connect_unix_socket(path, _left(timeout, httpcore.ConnectTimeout), socket_options)
        return DeadlineStream(stream)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


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
