"""What every HTTP client seam does with an LLM call, whatever the client.

A seam (httpx, httpx2, requests, aiohttp) is a thin adapter: it finds the request, the body and
the response in its client's own objects and maps its client's events onto one ``LLMCall``:

    request about to be sent  ->  open_call(...)          (read, start the span, link)
    the request is on the wire ->  with started.call.sending(): ...   (error -> on_error)
    response headers           ->  call.on_response(status, headers)
    each body chunk the app takes -> call.on_chunk(bytes)  (observe / observe_async do the loop)
    end of body                ->  call.on_eof()
    the body broke             ->  call.on_error(exc)
    the app let go / cancelled ->  call.on_close()
    garbage collected          ->  close_when_collected(obj, call)

``LLMCall`` ends its span exactly once, whichever of these comes first. Everything here is
called on the app's request path: our own failures are contained and logged once.

A seam that sends through another client (aiohttp inside an httpx transport) must not trace the
call twice: the outer seam marks its send with ``outer_seam()``, inner seams check
``inside_outer_seam()`` and stand aside.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from or_middleware.capture.call import CallTarget, LLMCall, log_once

__all__ = [
    "CallStart",
    "close_when_collected",
    "inside_outer_seam",
    "observe",
    "observe_async",
    "open_call",
    "outer_seam",
]

# True while an outer seam (an httpx client's) sends a request: the seams below it (the default
# transport, aiohttp inside an httpx transport) stand aside, so a call is traced once.
_outer_seam: ContextVar[bool] = ContextVar("or_middleware_outer_seam", default=False)


def inside_outer_seam() -> bool:
    return _outer_seam.get()


@contextmanager
def outer_seam() -> Iterator[None]:
    token = _outer_seam.set(True)
    try:
        yield
    finally:
        _outer_seam.reset(token)


@dataclass(slots=True)
class CallStart:
    """A started call and what the seam must change in its request before sending it."""

    call: LLMCall
    new_body: bytes | None = None  # the linked body to send instead of the app's, or None
    headers: dict[str, str] = field(default_factory=dict)  # to add (traceparent)


def open_call(
    target: CallTarget, host: str, port: int | None, body: bytes | None, skipped: str | None = None
) -> CallStart | None:
    """The request is about to be sent: read it, start the span, link it.

    ``body`` is the request body when the client holds it in memory; ``skipped`` says why not
    (``skipped_streamed_body``, ...). A body over the link cap is not parsed. None means: send
    the request untouched and untraced (our own failure, logged once).
    """
    try:
        if body is not None and len(body) > target.runtime.settings.max_link_body_bytes:
            body, skipped = None, "skipped_large_body"
        call = LLMCall(target, host, port)
        new_body = call.start(body, skipped)
        headers = call.traceparent_headers() if call.wants_traceparent() else {}
        return CallStart(call, new_body, headers)
    except Exception:
        log_once("call start")
        return None


@contextmanager
def _body_of(call: LLMCall) -> Iterator[None]:
    """Around the app's iteration of a body: its normal end is the end of the body, an exception
    from it the call's error. A consumer that stops early (GeneratorExit) is not an end: the
    seam reports that as ``on_close``."""
    try:
        yield
    except GeneratorExit:
        raise
    except BaseException as exc:
        call.on_error(exc)
        raise
    call.on_eof()


def observe(call: LLMCall, chunks: Iterable[bytes], *, feed: bool = True) -> Iterator[bytes]:
    """The app's iteration of a body, every chunk passed on as it is. ``feed=False`` watches
    only the end and the errors (the bytes are fed elsewhere)."""
    with _body_of(call):
        if not feed:
            yield from chunks
            return
        sink = call.chunk_sink()
        for chunk in chunks:
            try:
                sink(chunk)
            except Exception:
                sink = call.sink_failed()
            yield chunk


async def observe_async(call: LLMCall, chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    with _body_of(call):
        sink = call.chunk_sink()
        async for chunk in chunks:
            try:
                sink(chunk)  # (a bug of ours in it must not stop the app's iteration)
            except Exception:
                sink = call.sink_failed()
            yield chunk


def close_when_collected(owner: Any, call: LLMCall) -> weakref.finalize:
    """A response the app drops without reading or closing still ends its span (as abandoned)."""
    return weakref.finalize(owner, call.on_close)
