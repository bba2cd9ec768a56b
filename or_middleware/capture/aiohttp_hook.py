"""The aiohttp seam: every request of every ``aiohttp.ClientSession`` (plain aiohttp, google-genai's
async client, LiteLLM's aiohttp handlers), sessions made before or after installation.

Why these places (aiohttp 3.14's own structure, ``client.py`` / ``client_reqrep.py`` / ``streams.py``):

- ``BaseConnector.connect(req)``: once per request about to be sent (each redirect hop, each
  retry), after aiohttp has built the final URL, headers and body payload and before the
  connection is made, so a refused or timed-out connection is an error of the call, as with
  httpx. The request is read here and may be linked (``update_body``, aiohttp's public way to
  replace a body) and given ``traceparent``. A ``TraceConfig`` could not do this: it is fixed per
  session at construction (sessions made before us would be missed) and cannot change the body.
- ``ClientRequest.send(conn)``: the request is written; its response object is made.
- ``ClientResponse.start(conn)``: the status and headers have arrived; ``response.content`` (a
  ``StreamReader``) is the body.
- ``StreamReader._read_nowait_chunk``: the one place every read of the body hands bytes to the
  app (``read``, ``readany``, ``readchunk``, ``readline``/``readuntil``, ``readexactly``,
  ``read_nowait``, ``iter_chunked``/``iter_any``/``async for``, and so ``ClientResponse.read``,
  ``text`` and ``json``). The bytes are observed as the app consumes them, in order, once.
  The body ended when the reader is at EOF with nothing left (checked after each read, and by
  the reader's own ``on_eof`` callback for a consumer that had already taken every byte).
- ``StreamReader.set_exception``: the body broke (connection lost, truncated, read timeout).
- ``ClientResponse.release`` / ``close``: the app let go (``async with`` exit, early release).
  A response never started, read nor released ends when it is garbage collected.

StreamReader uses ``__slots__`` (no attribute of ours can be added, and it takes no weak
references), so the reader-to-call map is keyed by ``id()`` and emptied as each call ends.
A request sent while an httpx client seam is sending (LiteLLM's aiohttp transport inside httpx)
passes untouched: the outer seam traces that call.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from or_middleware.capture.call import LLMCall, log_once, match_request
from or_middleware.capture.lifecycle import inside_outer_seam, open_call

# (class, name) -> aiohttp's own function, restored by uninstall()
_originals: dict[tuple[type, str], Callable[..., Any]] = {}
# a connected request -> its call, until it is sent; its response -> the call, until the call ends
_by_request: weakref.WeakKeyDictionary[Any, LLMCall] = weakref.WeakKeyDictionary()
_sent: weakref.WeakSet[LLMCall] = weakref.WeakSet()
_by_response: weakref.WeakKeyDictionary[Any, LLMCall] = weakref.WeakKeyDictionary()
# id(response.content) -> the call whose body it is, until the call ends; and back
_by_reader: dict[int, LLMCall] = {}
_reader_of: weakref.WeakKeyDictionary[LLMCall, int] = weakref.WeakKeyDictionary()


def _forget(call: LLMCall) -> None:
    reader_id = _reader_of.pop(call, None)
    if reader_id is not None:
        _by_reader.pop(reader_id, None)


def _close(call: LLMCall) -> None:
    call.on_close()
    _forget(call)


async def _start_call(request: Any, target: Any) -> LLMCall | None:
    from aiohttp.payload import BytesPayload

    payload = request.body
    body: bytes | None = None
    skipped: str | None = None
    try:
        if isinstance(payload, BytesPayload):
            if (payload.size or 0) > target.runtime.settings.max_link_body_bytes:
                skipped = "skipped_large_body"
            else:
                body = await payload.as_bytes()
        elif payload:  # a file, an async iterable, multipart: never read ahead of aiohttp
            skipped = "skipped_streamed_body"
    except Exception:
        log_once("aiohttp request body")
        return None
    url = request.url
    started = open_call(target, url.host or "", url.port, body, skipped)
    if started is None:
        return None
    try:
        if started.new_body is not None:
            await request.update_body(started.new_body)
        for key, value in started.headers.items():
            request.headers[key] = value
    except Exception:
        log_once("aiohttp request update")
    return started.call


def _wrap_connect(original: Callable[..., Any]) -> Callable[..., Any]:
    async def connect(self: Any, req: Any, *args: Any, **kwargs: Any) -> Any:
        if inside_outer_seam():
            return await original(self, req, *args, **kwargs)  # an httpx client seam above traces it
        url = req.url
        target = match_request(req.method, url.scheme, url.host or "", url.port, url.path)
        if target is None:
            return await original(self, req, *args, **kwargs)
        call = await _start_call(req, target)
        if call is None:
            return await original(self, req, *args, **kwargs)
        with call.sending():  # refused, DNS, TLS, connect timeout: the call's error, aiohttp's exception
            connection = await original(self, req, *args, **kwargs)
        _by_request[req] = call
        weakref.finalize(req, _if_never_sent, call)  # a middleware or an error between connect and send
        return connection

    return connect


def _if_never_sent(call: LLMCall) -> None:
    if call not in _sent:
        call.on_close()


def _wrap_send(original: Callable[..., Any]) -> Callable[..., Any]:
    async def send(self: Any, conn: Any) -> Any:
        call = _by_request.pop(self, None)
        if call is None:
            return await original(self, conn)
        _sent.add(call)
        with call.sending():
            response = await original(self, conn)
        try:
            _by_response[response] = call
            weakref.finalize(response, _close, call)  # never started, read nor released (lifecycle's
            # close_when_collected, plus forgetting the reader)
        except Exception:
            log_once("aiohttp response wrap")
            call.end("error")
        return response

    return send


def _wrap_start(original: Callable[..., Any]) -> Callable[..., Any]:
    async def start(self: Any, connection: Any) -> Any:
        call = _by_response.get(self)
        if call is None:
            return await original(self, connection)
        try:
            result = await original(self, connection)
        except BaseException as exc:
            call.on_error(exc)
            raise
        _observe_body(call, self)
        return result

    return start


def _observe_body(call: LLMCall, response: Any) -> None:
    try:
        content = response.content
        headers = response.headers
        # aiohttp decompresses before the reader unless auto_decompress=False; its decoder
        # marks the reader (total_compressed_bytes) when it does
        encoding = None if getattr(content, "total_compressed_bytes", None) is not None else headers.get(
            "content-encoding"
        )
        call.on_response(
            response.status,
            {
                "content-type": headers.get("content-type"),
                "content-encoding": encoding,
                "x-generation-id": headers.get("x-generation-id"),
            },
        )
        _reader_of[call] = id(content)
        _by_reader[id(content)] = call
        content.on_eof(lambda: _maybe_consumed(content))
    except Exception:
        log_once("aiohttp body setup")
        call.end("error")


def _maybe_consumed(content: Any) -> None:
    """The reader is at EOF; if the app has already taken every byte, the body ended."""
    call = _by_reader.get(id(content))
    if call is not None and content.at_eof():
        call.on_eof()
        _forget(call)


def _wrap_read_nowait_chunk(original: Callable[..., Any]) -> Callable[..., Any]:
    def _read_nowait_chunk(self: Any, n: int) -> Any:
        data = original(self, n)
        call = _by_reader.get(id(self))
        if call is not None:
            call.on_chunk(data)
            if self.at_eof():
                call.on_eof()
                _forget(call)
        return data

    return _read_nowait_chunk


def _wrap_set_exception(original: Callable[..., Any]) -> Callable[..., Any]:
    def set_exception(self: Any, exc: BaseException, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(self, exc, *args, **kwargs)
        finally:
            call = _by_reader.get(id(self))
            if call is not None:
                call.on_error(exc)
                _forget(call)

    return set_exception


def _wrap_release(original: Callable[..., Any]) -> Callable[..., Any]:
    def release(self: Any) -> Any:
        # before aiohttp's own release, which fails the reader with "Connection closed"
        call = _by_response.get(self)
        if call is not None:
            _close(call)
        return original(self)

    release.__name__ = original.__name__
    return release


def _patches() -> list[tuple[type, str, Callable[[Callable[..., Any]], Callable[..., Any]]]]:
    from aiohttp.client_reqrep import ClientRequest, ClientResponse
    from aiohttp.connector import BaseConnector
    from aiohttp.streams import StreamReader

    return [
        (BaseConnector, "connect", _wrap_connect),
        (ClientRequest, "send", _wrap_send),
        (ClientResponse, "start", _wrap_start),
        (ClientResponse, "release", _wrap_release),
        (ClientResponse, "close", _wrap_release),
        (StreamReader, "_read_nowait_chunk", _wrap_read_nowait_chunk),
        (StreamReader, "set_exception", _wrap_set_exception),
    ]


def install() -> None:
    """Wrap aiohttp's classes once; without aiohttp, or with one lacking any of these, do nothing."""
    if _originals:
        return
    try:
        patches = _patches()
    except ImportError:
        return
    if not all(callable(cls.__dict__.get(name)) for cls, name, _ in patches):
        return  # an aiohttp whose internals moved: better untraced than half traced
    for cls, name, wrap in patches:
        original = cls.__dict__[name]
        _originals[(cls, name)] = original
        setattr(cls, name, wrap(original))


def uninstall() -> None:
    for (cls, name), original in _originals.items():
        setattr(cls, name, original)
    _originals.clear()
