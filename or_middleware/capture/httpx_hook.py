"""The httpx seam (and httpx2's, the same API under another name): an adapter onto the shared
call lifecycle (``capture/lifecycle.py``).

The openai, anthropic and openrouter SDKs all send through httpx or httpx2. Two places in each:

- ``Client._send_single_request`` / ``AsyncClient._send_single_request``: every request of
  every client, whatever its transport (``httpx.Client(transport=...)`` with a custom, mock,
  WSGI/ASGI or aiohttp-backed transport, and transports other instrumentations wrap). Being
  above the transport also makes our GenAI span the parent of any HTTP client span an httpx
  instrumentation starts inside the transport.
- ``HTTPTransport.handle_request`` / ``AsyncHTTPTransport.handle_async_request``: code that
  drives a default transport without a client.

While a seam sends a call it traces, it is the outer seam: every seam below it (the default
transport under a client, aiohttp under LiteLLM's httpx transport) stands aside. A request it
does not trace marks nothing, so an app called in-process through ``ASGITransport`` still has
its own LLM calls traced.

The response body is observed by wrapping ``response.stream`` in a stream of httpx's own base
class; httpx always calls its ``close``, whether the consumer read to the end or not.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from types import ModuleType
from typing import Any

from or_middleware.capture.call import CallTarget, LLMCall, log_once, match_request
from or_middleware.capture.lifecycle import (
    close_when_collected,
    inside_outer_seam,
    observe,
    observe_async,
    open_call,
    outer_seam,
)


def _held_content(message: Any) -> bytes | None:
    """The body when httpx already holds it in memory: a request built with content=/json=
    (every SDK), or a response a custom or mock transport built with its content."""
    content = message.__dict__.get("_content")
    return content if isinstance(content, bytes) else None


def _target(request: Any, stream_class: type) -> CallTarget | None:
    if inside_outer_seam():
        return None  # a seam above (the client's, over a wrapping transport) traces this call
    if not isinstance(request.stream, stream_class):
        return None  # a body of the other kind (async on a sync client): httpx raises its own error
    url = request.url
    return match_request(request.method, url.scheme, url.host, url.port, url.path)


def _start(
    target: CallTarget, request: Any, body: bytes | None, skipped: str | None, module: ModuleType
) -> LLMCall | None:
    started = open_call(target, request.url.host, request.url.port, body, skipped)
    if started is None:
        return None
    try:
        if started.new_body is not None:
            request.stream = module.ByteStream(started.new_body)
            request._content = started.new_body  # what request.content returns (retries, logging)
            request.headers["Content-Length"] = str(len(started.new_body))
            request.headers.pop("Transfer-Encoding", None)
        for key, value in started.headers.items():
            request.headers[key] = value
    except Exception:
        log_once("httpx request update")
    return started.call


def _observe_response(call: LLMCall, response: Any, observed: type) -> Any:
    try:
        call.on_response(response.status_code, response.headers)
        held = _held_content(response)
        if held is not None:  # httpx will never stream this body: it is all here already
            call.on_chunk(held)
            call.on_eof()
        else:
            response.stream = observed(response.stream, call)
    except Exception:
        log_once("response wrap")
        call.end("error")
    return response


def _unlisted_upload(target: CallTarget, request: Any) -> bool:
    """A streamed upload to an unlisted host: never read ahead of httpx (a producer may wait on the
    answer), so its shape cannot be confirmed and the call is not traced (as aiohttp and requests)."""
    return target.endpoint.by_shape and _held_content(request) is None


class _Collected:
    """The first bytes of a streamed request body, up to the link cap (see _collect_*)."""

    def __init__(self, cap: int) -> None:
        self.cap, self.head, self.size = cap, [], 0

    def add(self, chunk: bytes) -> bool:
        """Keep ``chunk``; True once past the cap (stop reading: the body is not ours to hold)."""
        self.head.append(chunk)
        self.size += len(chunk)
        return self.size > self.cap


def _streams(module: ModuleType) -> tuple[type, type, type, type]:
    """Stream classes of this module's own base classes (httpx checks isinstance)."""

    class ObservedSyncStream(module.SyncByteStream):  # type: ignore[name-defined,misc]
        def __init__(self, inner: Any, call: LLMCall) -> None:
            self._inner, self._call = inner, call
            self._finalizer = close_when_collected(self, call)

        def __iter__(self) -> Iterator[bytes]:
            return observe(self._call, self._inner)

        def close(self) -> None:
            try:
                self._inner.close()
            finally:
                self._call.on_close()
                self._finalizer.detach()

    class ObservedAsyncStream(module.AsyncByteStream):  # type: ignore[name-defined,misc]
        def __init__(self, inner: Any, call: LLMCall) -> None:
            self._inner, self._call = inner, call
            self._finalizer = close_when_collected(self, call)

        def __aiter__(self) -> AsyncIterator[bytes]:
            return observe_async(self._call, self._inner)

        async def aclose(self) -> None:
            try:
                await self._inner.aclose()
            finally:
                self._call.on_close()
                self._finalizer.detach()

    class ReplaySyncStream(module.SyncByteStream):  # type: ignore[name-defined,misc]
        """A request body we read past our cap: what we read, then the rest, unchanged."""

        def __init__(self, head: list[bytes], rest: Iterator[bytes], inner: Any) -> None:
            self._head, self._rest, self._inner = head, rest, inner

        def __iter__(self) -> Iterator[bytes]:
            yield from self._head
            yield from self._rest

        def close(self) -> None:
            if (close := getattr(self._inner, "close", None)) is not None:
                close()

    class ReplayAsyncStream(module.AsyncByteStream):  # type: ignore[name-defined,misc]
        def __init__(self, head: list[bytes], rest: AsyncIterator[bytes], inner: Any) -> None:
            self._head, self._rest, self._inner = head, rest, inner

        async def __aiter__(self) -> AsyncIterator[bytes]:
            for chunk in self._head:
                yield chunk
            async for chunk in self._rest:
                yield chunk

        async def aclose(self) -> None:
            if (aclose := getattr(self._inner, "aclose", None)) is not None:
                await aclose()

    return ObservedSyncStream, ObservedAsyncStream, ReplaySyncStream, ReplayAsyncStream


def _body_result(request: Any, module: ModuleType, collected: _Collected) -> tuple[bytes | None, str | None]:
    body = b"".join(collected.head)
    request.stream = module.ByteStream(body)
    return body, None


def wrap_sync(module: ModuleType, original: Callable[..., Any]) -> Callable[..., Any]:
    observed, _, replay, _ = _streams(module)

    def read_body(request: Any, cap: int) -> tuple[bytes | None, str | None]:
        held = _held_content(request)
        if held is not None:
            return held, None
        collected, inner = _Collected(cap), request.stream
        iterator = iter(inner)
        for chunk in iterator:
            if collected.add(chunk):
                request.stream = replay(collected.head, iterator, inner)
                return None, "skipped_large_body"
        return _body_result(request, module, collected)

    def handle_request(self: Any, request: Any) -> Any:
        target = _target(request, module.SyncByteStream)
        if target is None:
            return original(self, request)
        body, skipped = (
            (None, "skipped_streamed_body")
            if _unlisted_upload(target, request)
            else read_body(request, target.runtime.settings.max_link_body_bytes)
        )
        call = _start(target, request, body, skipped, module)
        if call is None:
            return original(self, request)
        with outer_seam(), call.sending():
            response = original(self, request)
        return _observe_response(call, response, observed)

    handle_request.__or_middleware_original__ = original  # type: ignore[attr-defined]
    return handle_request


def wrap_async(module: ModuleType, original: Callable[..., Any]) -> Callable[..., Any]:
    _, observed, _, replay = _streams(module)

    async def read_body(request: Any, cap: int) -> tuple[bytes | None, str | None]:
        held = _held_content(request)
        if held is not None:
            return held, None
        collected, inner = _Collected(cap), request.stream
        iterator = inner.__aiter__()
        async for chunk in iterator:
            if collected.add(chunk):
                request.stream = replay(collected.head, iterator, inner)
                return None, "skipped_large_body"
        return _body_result(request, module, collected)

    async def handle_async_request(self: Any, request: Any) -> Any:
        target = _target(request, module.AsyncByteStream)
        if target is None:
            return await original(self, request)
        body, skipped = (
            (None, "skipped_streamed_body")
            if _unlisted_upload(target, request)
            else await read_body(request, target.runtime.settings.max_link_body_bytes)
        )
        call = _start(target, request, body, skipped, module)
        if call is None:
            return await original(self, request)
        with outer_seam(), call.sending():
            response = await original(self, request)
        return _observe_response(call, response, observed)

    handle_async_request.__or_middleware_original__ = original  # type: ignore[attr-defined]
    return handle_async_request


def seams(module: ModuleType) -> list[tuple[type, str, Callable[[Callable[..., Any]], Callable[..., Any]]]]:
    """(class, method, wrap) for each seam of this httpx-like module; ``wrap(original)`` is ours.

    ``_send_single_request`` is private API (present in httpx since 0.18 and in httpx2); where a
    version lacks it, the transport seam alone still covers the default transports.
    """

    def sync(original: Callable[..., Any]) -> Callable[..., Any]:
        return wrap_sync(module, original)

    def asynchronous(original: Callable[..., Any]) -> Callable[..., Any]:
        return wrap_async(module, original)

    found = [
        (module.HTTPTransport, "handle_request", sync),
        (module.AsyncHTTPTransport, "handle_async_request", asynchronous),
    ]
    for cls, wrap in ((module.Client, sync), (module.AsyncClient, asynchronous)):
        if getattr(cls, "_send_single_request", None) is not None:
            found.append((cls, "_send_single_request", wrap))
    return found
