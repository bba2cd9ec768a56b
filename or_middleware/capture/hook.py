"""The httpx hook (and the switch for the requests hook): every request of every httpx
client passes our seam.

The openai, anthropic and openrouter SDKs all send through httpx (or through ``httpx2``,
the same API under another name, which the newest SDKs use). Two seams in each module:

- ``Client._send_single_request`` / ``AsyncClient._send_single_request``: every request of
  every client, whatever its transport (``httpx.Client(transport=...)`` with a custom,
  mock, WSGI/ASGI or aiohttp-backed transport, and transports other instrumentations wrap).
  Being above the transport also makes our GenAI span the parent of any HTTP client span
  an httpx instrumentation starts inside the transport.
- ``HTTPTransport.handle_request`` / ``AsyncHTTPTransport.handle_async_request``: code that
  drives a default transport without a client. A request already traced at the client seam
  passes this one untouched, so nothing is traced twice.

Installation is idempotent and reversible, for clients created before or after it.
"""

from __future__ import annotations

import importlib
import logging
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from types import ModuleType
from typing import Any

from or_middleware.capture import aiohttp_hook, requests_hook
from or_middleware.capture.call import CallTarget, LLMCall, inside_outer_seam, log_once, match_request, outer_seam

logger = logging.getLogger(__name__)

HTTPX_MODULES = ("httpx", "httpx2")
_lock = threading.Lock()
# (class, attribute) -> the original function, restored by uninstall()
_originals: dict[tuple[type, str], Callable[..., Any]] = {}
_switched_off = False  # uninstall() was called: middleware built later does not reinstall


def _target(request: Any) -> CallTarget | None:
    url = request.url
    return match_request(request.method, url.scheme, url.host, url.port, url.path)


def _start_call(
    target: CallTarget, request: Any, body: bytes | None, skipped: str | None, module: ModuleType
) -> LLMCall | None:
    try:
        call = LLMCall(target, request.url.host, request.url.port)
        new_body = call.start(body, skipped)
        if new_body is not None:
            request.stream = module.ByteStream(new_body)
            request._content = new_body  # what request.content returns (retries, logging)
            request.headers["Content-Length"] = str(len(new_body))
            request.headers.pop("Transfer-Encoding", None)
        if call.wants_traceparent():
            for key, value in call.traceparent_headers().items():
                request.headers[key] = value
        return call
    except Exception:
        log_once("call start")
        return None


def _held_content(message: Any) -> bytes | None:
    """The body when httpx already holds it in memory: a request built with content=/json=
    (every SDK), or a response a custom or mock transport built with its content."""
    content = message.__dict__.get("_content")
    return content if isinstance(content, bytes) else None


def _observe_response(call: LLMCall, response: Any, observed: type) -> None:
    call.on_response(response.status_code, response.headers)
    held = _held_content(response)
    if held is not None:  # httpx will never stream this body: it is all here already
        call.on_chunk(held)
        call.on_eof()
    else:
        response.stream = observed(response.stream, call)


def _make_streams(module: ModuleType) -> tuple[type, type, type, type]:
    """Stream classes that subclass this module's base classes (httpx checks isinstance)."""

    class ObservedSyncStream(module.SyncByteStream):  # type: ignore[name-defined,misc]
        def __init__(self, inner: Any, call: LLMCall) -> None:
            self._inner = inner
            self._call = call
            self._finalizer = weakref.finalize(self, call.on_close)

        def __iter__(self) -> Iterator[bytes]:
            call = self._call
            try:
                for chunk in self._inner:
                    call.on_chunk(chunk)
                    yield chunk
            except GeneratorExit:
                raise
            except BaseException as exc:
                call.on_error(exc)
                raise
            call.on_eof()

        def close(self) -> None:
            try:
                self._inner.close()
            finally:
                self._call.on_close()
                self._finalizer.detach()

    class ObservedAsyncStream(module.AsyncByteStream):  # type: ignore[name-defined,misc]
        def __init__(self, inner: Any, call: LLMCall) -> None:
            self._inner = inner
            self._call = call
            self._finalizer = weakref.finalize(self, call.on_close)

        async def __aiter__(self) -> AsyncIterator[bytes]:
            call = self._call
            try:
                async for chunk in self._inner:
                    call.on_chunk(chunk)
                    yield chunk
            except GeneratorExit:
                raise
            except BaseException as exc:
                call.on_error(exc)
                raise
            call.on_eof()

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
            close = getattr(self._inner, "close", None)
            if close is not None:
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
            aclose = getattr(self._inner, "aclose", None)
            if aclose is not None:
                await aclose()

    return ObservedSyncStream, ObservedAsyncStream, ReplaySyncStream, ReplayAsyncStream


def _read_sync_body(request: Any, cap: int, module: ModuleType, replay: type) -> tuple[bytes | None, str | None]:
    body = _held_content(request)
    if body is not None:
        return (body, None) if len(body) <= cap else (None, "skipped_large_body")
    inner = request.stream
    iterator = iter(inner)
    head: list[bytes] = []
    size = 0
    for chunk in iterator:
        head.append(chunk)
        size += len(chunk)
        if size > cap:
            request.stream = replay(head, iterator, inner)
            return None, "skipped_large_body"
    body = b"".join(head)
    request.stream = module.ByteStream(body)
    return body, None


async def _read_async_body(
    request: Any, cap: int, module: ModuleType, replay: type
) -> tuple[bytes | None, str | None]:
    body = _held_content(request)
    if body is not None:
        return (body, None) if len(body) <= cap else (None, "skipped_large_body")
    inner = request.stream
    iterator = inner.__aiter__()
    head: list[bytes] = []
    size = 0
    async for chunk in iterator:
        head.append(chunk)
        size += len(chunk)
        if size > cap:
            request.stream = replay(head, iterator, inner)
            return None, "skipped_large_body"
    body = b"".join(head)
    request.stream = module.ByteStream(body)
    return body, None


def _send_sync(original: Callable[..., Any], client_seam: bool, self: Any, request: Any) -> Any:
    if not client_seam:
        return original(self, request)
    with outer_seam():
        return original(self, request)


async def _send_async(original: Callable[..., Any], client_seam: bool, self: Any, request: Any) -> Any:
    if not client_seam:
        return await original(self, request)
    with outer_seam():
        return await original(self, request)


def _wrap_sync(module: ModuleType, original: Callable[..., Any], *, client_seam: bool = False) -> Callable[..., Any]:
    observed, _, replay, _ = _make_streams(module)

    def handle_request(self: Any, request: Any) -> Any:
        if not client_seam and inside_outer_seam():
            return original(self, request)  # traced (or found not an LLM call) at the client seam
        if not isinstance(request.stream, module.SyncByteStream):
            return original(self, request)  # an async body on a sync client: httpx raises its own error
        target = _target(request)
        if target is None:
            return _send_sync(original, client_seam, self, request)
        cap = target.runtime.settings.max_link_body_bytes
        body, skipped = _read_sync_body(request, cap, module, replay)
        call = _start_call(target, request, body, skipped, module)
        if call is None:
            return _send_sync(original, client_seam, self, request)
        call.activate()
        try:
            response = _send_sync(original, client_seam, self, request)
        except BaseException as exc:
            call.on_error(exc)
            raise
        finally:
            call.deactivate()
        try:
            _observe_response(call, response, observed)
        except Exception:
            log_once("response wrap")
            call.end("error")
        return response

    handle_request.__or_middleware_original__ = original  # type: ignore[attr-defined]
    return handle_request


def _wrap_async(module: ModuleType, original: Callable[..., Any], *, client_seam: bool = False) -> Callable[..., Any]:
    _, observed, _, replay = _make_streams(module)

    async def handle_async_request(self: Any, request: Any) -> Any:
        if not client_seam and inside_outer_seam():
            return await original(self, request)  # traced (or found not an LLM call) at the client seam
        if not isinstance(request.stream, module.AsyncByteStream):
            return await original(self, request)  # a sync body on an async client: httpx raises its own error
        target = _target(request)
        if target is None:
            return await _send_async(original, client_seam, self, request)
        cap = target.runtime.settings.max_link_body_bytes
        body, skipped = await _read_async_body(request, cap, module, replay)
        call = _start_call(target, request, body, skipped, module)
        if call is None:
            return await _send_async(original, client_seam, self, request)
        call.activate()
        try:
            response = await _send_async(original, client_seam, self, request)
        except BaseException as exc:
            call.on_error(exc)
            raise
        finally:
            call.deactivate()
        try:
            _observe_response(call, response, observed)
        except Exception:
            log_once("response wrap")
            call.end("error")
        return response

    handle_async_request.__or_middleware_original__ = original  # type: ignore[attr-defined]
    return handle_async_request


def _patch(cls: type, attribute: str, wrapper: Callable[..., Any]) -> None:
    current = getattr(cls, attribute)
    if getattr(current, "__or_middleware_original__", None) is not None:
        return  # already ours
    _originals[(cls, attribute)] = current
    setattr(cls, attribute, wrapper)


def _patch_client_seam(module: ModuleType) -> None:
    """``_send_single_request`` is private API (present in httpx since 0.18 and in httpx2);
    where a version lacks it, the transport seam alone still covers the default transports."""
    for cls, wrap in ((module.Client, _wrap_sync), (module.AsyncClient, _wrap_async)):
        original = getattr(cls, "_send_single_request", None)
        if original is not None and (cls, "_send_single_request") not in _originals:
            _patch(cls, "_send_single_request", wrap(module, original, client_seam=True))


def install(*, by_middleware: bool = False) -> None:
    """Patch httpx (and httpx2) default transports. Safe to call any number of times.

    A middleware calls this when it is built; after an explicit :func:`uninstall` only an
    explicit ``install()`` turns the hook on again.
    """
    global _switched_off
    with _lock:
        if by_middleware and _switched_off:
            return
        _switched_off = False
        seen: set[int] = set()
        for name in HTTPX_MODULES:
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
            if id(module) in seen:  # httpx2.alias_httpx() makes both names one module
                continue
            seen.add(id(module))
            sync_cls, async_cls = module.HTTPTransport, module.AsyncHTTPTransport
            if (sync_cls, "handle_request") not in _originals:
                _patch(sync_cls, "handle_request", _wrap_sync(module, sync_cls.handle_request))
            if (async_cls, "handle_async_request") not in _originals:
                _patch(async_cls, "handle_async_request", _wrap_async(module, async_cls.handle_async_request))
            _patch_client_seam(module)
        requests_hook.install()
        aiohttp_hook.install()


def uninstall() -> None:
    """Put every patched function back exactly as it was."""
    global _switched_off
    with _lock:
        _switched_off = True
        for (cls, attribute), original in _originals.items():
            setattr(cls, attribute, original)
        _originals.clear()
        requests_hook.uninstall()
        aiohttp_hook.uninstall()


def installed() -> bool:
    return bool(_originals)
