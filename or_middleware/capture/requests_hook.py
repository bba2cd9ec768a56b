"""The requests hook: ``HTTPAdapter.send`` is the one seam every ``requests`` call passes.

The response body is observed where urllib3 reads it off the connection, never by
replacing ``response.raw``: the app keeps urllib3's own ``HTTPResponse`` (iterable, a
context manager, ``isinstance``-true, every method its own). A few methods of urllib3's
``HTTPResponse`` class are wrapped once; they observe only the responses our seam
registered (a weak mapping) and hand every other response straight to the original:

- ``_raw_read``: every body read of a body that is not chunked (``read``, ``read1``,
  ``stream``, ``drain_conn``); the end of such a body is the read that closes the
  connection's file (urllib3 and http.client close it at Content-Length or at EOF).
- ``_handle_chunk`` / ``read_chunked``: the bytes of a chunked body, and its end (the
  generator returns after the last chunk).
- ``close``: the app let go of the body before its end (``_update_chunk_length`` only
  marks the close urllib3 makes itself before raising on a bad chunk header).

The bytes we see are the wire bytes (after de-chunking, before Content-Encoding), so the
observer decodes them itself whatever ``decode_content`` the app asked for.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from or_middleware.capture.call import LLMCall, log_once, match_request
from or_middleware.capture.lifecycle import close_when_collected, inside_outer_seam, observe, open_call, outer_seam

_original_send: Callable[..., Any] | None = None
# method name -> urllib3's own function of HTTPResponse, restored by uninstall()
_urllib3_originals: dict[str, Callable[..., Any]] = {}
# urllib3 HTTPResponse -> the call whose body it carries; entries vanish with the response
_observed: weakref.WeakKeyDictionary[Any, LLMCall] = weakref.WeakKeyDictionary()
_closing_on_error: set[int] = set()  # ids of responses inside urllib3's chunk-header parsing


def _fp_closed(response: Any) -> bool:
    fp = response._fp
    if fp is None:
        return True
    isclosed = getattr(fp, "isclosed", None)
    return bool(isclosed()) if isclosed is not None else bool(getattr(fp, "closed", False))


def _make_raw_read(original: Callable[..., Any]) -> Callable[..., Any]:
    def _raw_read(self: Any, amt: int | None = None, **kwargs: Any) -> Any:
        call = _observed.get(self)
        if call is None:
            return original(self, amt, **kwargs)
        try:
            data = original(self, amt, **kwargs)
        except BaseException as exc:
            call.on_error(exc)
            raise
        if data:
            call.on_chunk(data)
        if amt != 0 and (not data or _fp_closed(self)):
            call.on_eof()
        return data

    return _raw_read


def _make_handle_chunk(original: Callable[..., Any]) -> Callable[..., Any]:
    def _handle_chunk(self: Any, amt: int | None) -> Any:
        data = original(self, amt)
        call = _observed.get(self)
        if call is not None and data:
            call.on_chunk(data)
        return data

    return _handle_chunk


def _make_read_chunked(original: Callable[..., Any]) -> Callable[..., Any]:
    def read_chunked(self: Any, amt: int | None = None, decode_content: bool | None = None) -> Iterator[bytes]:
        call = _observed.get(self)
        chunks = original(self, amt, decode_content=decode_content)
        # the bytes were fed by _handle_chunk; here only the end and the errors
        return chunks if call is None else observe(call, chunks, feed=False)

    return read_chunked


def _make_update_chunk_length(original: Callable[..., Any]) -> Callable[..., Any]:
    def _update_chunk_length(self: Any) -> Any:
        # urllib3 closes the response itself before raising on a bad chunk header: that
        # close is the error's, not the app's (read_chunked records the error)
        _closing_on_error.add(id(self))
        try:
            return original(self)
        finally:
            _closing_on_error.discard(id(self))

    return _update_chunk_length


def _make_close(original: Callable[..., Any]) -> Callable[..., Any]:
    def close(self: Any) -> Any:
        try:
            return original(self)
        finally:
            call = _observed.get(self)
            if call is not None and id(self) not in _closing_on_error:
                call.on_close()

    return close


# Not release_conn: urllib3 calls it itself when a read reaches the end of the body (the
# read then reports the end), and requests calls it only after close().
_WRAPPERS: dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]] = {
    "_raw_read": _make_raw_read,
    "_handle_chunk": _make_handle_chunk,
    "_update_chunk_length": _make_update_chunk_length,
    "read_chunked": _make_read_chunked,
    "close": _make_close,
}


def _observe_body(call: LLMCall, response: Any) -> None:
    raw = response.raw
    if _is_urllib3(raw):
        _observed[raw] = call
        close_when_collected(raw, call)  # never read nor closed: the span still ends
    else:  # a custom adapter's own raw object: we cannot see its bytes
        call.end("unobserved")


def _is_urllib3(raw: Any) -> bool:
    try:
        from urllib3.response import HTTPResponse
    except ImportError:
        return False
    return bool(_urllib3_originals) and isinstance(raw, HTTPResponse)


def _body_bytes(body: Any) -> bytes | None:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return None


def _traced_send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
    assert _original_send is not None
    parts = urlsplit(request.url)
    target = None
    if not inside_outer_seam():
        target = match_request(request.method or "", parts.scheme, parts.hostname or "", parts.port, parts.path)
    if target is None:
        return _original_send(self, request, *args, **kwargs)
    body = _body_bytes(request.body)
    skipped = "skipped_streamed_body" if body is None and request.body is not None else None
    started = open_call(target, parts.hostname or "", parts.port, body, skipped)
    if started is None:
        return _original_send(self, request, *args, **kwargs)
    try:
        if started.new_body is not None:
            request.body = started.new_body
            request.headers["Content-Length"] = str(len(started.new_body))
        request.headers.update(started.headers)
    except Exception:
        log_once("requests request update")
    call = started.call
    with outer_seam(), call.sending():
        response = _original_send(self, request, *args, **kwargs)
    try:
        call.on_response(response.status_code, {k.lower(): v for k, v in response.headers.items()})
        _observe_body(call, response)
    except Exception:
        log_once("requests response wrap")
        call.end("error")
    return response


_traced_send.__or_middleware_original__ = True  # type: ignore[attr-defined]


def install() -> None:
    global _original_send
    try:
        from requests.adapters import HTTPAdapter
        from urllib3.response import HTTPResponse
    except ImportError:
        return
    if _original_send is not None:
        return
    if not all(callable(HTTPResponse.__dict__.get(name)) for name in _WRAPPERS):
        return  # urllib3 1.x: no seam to read the body at; leave requests alone
    for name, wrap in _WRAPPERS.items():
        original = HTTPResponse.__dict__[name]
        _urllib3_originals[name] = original
        setattr(HTTPResponse, name, wrap(original))
    _original_send = HTTPAdapter.send
    HTTPAdapter.send = _traced_send  # type: ignore[method-assign]


def uninstall() -> None:
    global _original_send
    if _original_send is None:
        return
    from requests.adapters import HTTPAdapter
    from urllib3.response import HTTPResponse

    HTTPAdapter.send = _original_send  # type: ignore[method-assign]
    _original_send = None
    for name, original in _urllib3_originals.items():
        setattr(HTTPResponse, name, original)
    _urllib3_originals.clear()
