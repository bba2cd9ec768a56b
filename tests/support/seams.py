"""Helpers for the seam tests: wait for exactly N GenAI spans; run something with the hook off."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import or_middleware
from tests.support.raw_http import chunk, head_bytes, reset


def genai_span_waiter(receiver: Any) -> Callable[[int], list[Any]]:
    """A function that waits for ``count`` GenAI spans and checks no more arrive (each ended once)."""

    def wait(count: int = 1) -> list[Any]:
        or_middleware.force_flush()
        spans = receiver.wait_for_spans(lambda s: s.scope == "or_middleware", count=count)
        time.sleep(0.1)
        or_middleware.force_flush()  # anything late (a double span) would arrive now
        assert len([s for s in receiver.spans if s.scope == "or_middleware"]) == count
        return spans

    return wait


def without_hook(action: Callable[[], Any]) -> Any:
    """``action()`` with every seam uninstalled (the bare client), then the seams back."""
    or_middleware.uninstrument()
    try:
        return action()
    finally:
        or_middleware.instrument()


def normalised(data: bytes) -> bytes:
    """The fake stamps ids and wall-clock seconds; everything else must match to the byte."""
    import re

    data = re.sub(rb'"created": ?\d+', b'"created":0', data)
    data = re.sub(rb'"id": ?"(gen|chatcmpl)-[^"]*"', b'"id":"X"', data)
    return re.sub(rb"gen-\d+-fake", b"gen-N-fake", data)


def inside_a_request(action: Callable[[], Any]) -> Any:
    """Run ``action`` as a request the middleware serves: an unlisted host (these raw servers)
    is traced by request shape only for calls made inside one."""
    from or_middleware import context
    from or_middleware.identity import identity_from_asgi
    from or_middleware.runtime import default_runtime

    scope = {"type": "http", "method": "POST", "path": "/test", "headers": []}
    token = context.enter(identity_from_asgi(default_runtime(), scope, (b"x-user-id", b"x-session-id")))
    try:
        return action()
    finally:
        context.leave(token)


# Hostile upstream answers for tests.support.raw_http.RawHTTPServer: what a real server may do.


def reset_mid_stream(request: Any, conn: socket.socket) -> None:
    conn.sendall(head_bytes(200, {"content-type": "text/event-stream", "transfer-encoding": "chunked"}))
    conn.sendall(chunk(b'data: {"id":"x","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'))
    time.sleep(0.1)
    reset(conn)


def stall_mid_stream(request: Any, conn: socket.socket) -> None:
    conn.sendall(head_bytes(200, {"content-type": "text/event-stream", "transfer-encoding": "chunked"}))
    conn.sendall(chunk(b'data: {"id":"x","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'))
    time.sleep(3)


def bad_chunking(request: Any, conn: socket.socket) -> None:
    conn.sendall(head_bytes(200, {"content-type": "text/event-stream", "transfer-encoding": "chunked"}))
    conn.sendall(b"zz\r\nnot hex\r\n")


def short_body(request: Any, conn: socket.socket) -> None:
    conn.sendall(head_bytes(200, {"content-type": "application/json", "content-length": "500"}) + b'{"id":')


HOSTILE_SCRIPTS = [reset_mid_stream, stall_mid_stream, bad_chunking, short_body]
