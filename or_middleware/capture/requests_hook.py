"""The requests hook: ``HTTPAdapter.send`` is the one seam every ``requests`` call passes.

The response body is observed through a proxy around ``response.raw`` (urllib3's
HTTPResponse): requests reads it with ``raw.stream(..., decode_content=True)``, so the
chunks we see are already decompressed and the app still gets exactly the same bytes.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from or_middleware.capture.call import LLMCall, log_once, match_request

_original_send: Callable[..., Any] | None = None


class ObservedRaw:
    """Stands in for urllib3's HTTPResponse as ``response.raw``; everything not read is forwarded."""

    def __init__(self, inner: Any, call: LLMCall) -> None:
        self._inner = inner
        self._call = call
        self._finalizer = weakref.finalize(self, call.on_close)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def stream(self, amt: int | None = 2**16, decode_content: bool | None = None) -> Iterator[bytes]:
        call = self._call
        try:
            for chunk in self._inner.stream(amt, decode_content=decode_content):
                if decode_content:
                    call.on_chunk(chunk)
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            call.on_error(exc)
            raise
        call.on_eof()

    def read(self, amt: int | None = None, *args: Any, **kwargs: Any) -> bytes:
        data = self._inner.read(amt, *args, **kwargs)
        if kwargs.get("decode_content") or self._inner.headers.get("content-encoding") in (None, "identity"):
            self._call.on_chunk(data)
        if not data or amt is None:
            self._call.on_eof()
        return data

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._call.on_close()
            self._finalizer.detach()

    def release_conn(self) -> None:
        try:
            self._inner.release_conn()
        finally:
            self._call.on_close()


def _body_bytes(body: Any) -> bytes | None:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return None


def _traced_send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
    assert _original_send is not None
    parts = urlsplit(request.url)
    target = match_request(request.method or "", parts.scheme, parts.hostname or "", parts.port, parts.path)
    if target is None:
        return _original_send(self, request, *args, **kwargs)
    call: LLMCall | None = None
    try:
        body = _body_bytes(request.body)
        cap = target.runtime.settings.max_link_body_bytes
        skipped = None
        if body is None and request.body is not None:
            skipped = "skipped_streamed_body"
        elif body is not None and len(body) > cap:
            body, skipped = None, "skipped_large_body"
        call = LLMCall(target, parts.hostname or "", parts.port)
        new_body = call.start(body, skipped)
        if new_body is not None:
            request.body = new_body
            request.headers["Content-Length"] = str(len(new_body))
        if call.wants_traceparent():
            request.headers.update(call.traceparent_headers())
    except Exception:
        log_once("requests call start")
    if call is None:
        return _original_send(self, request, *args, **kwargs)
    call.activate()
    try:
        response = _original_send(self, request, *args, **kwargs)
    except BaseException as exc:
        call.on_error(exc)
        raise
    finally:
        call.deactivate()
    try:
        headers = {k.lower(): v for k, v in response.headers.items()}
        headers.pop("content-encoding", None)  # requests hands us decoded bytes
        call.on_response(response.status_code, headers)
        response.raw = ObservedRaw(response.raw, call)
    except Exception:
        log_once("requests response wrap")
        call.end("error")
    return response


_traced_send.__or_middleware_original__ = True  # type: ignore[attr-defined]


def install() -> None:
    global _original_send
    try:
        from requests.adapters import HTTPAdapter
    except ImportError:
        return
    if _original_send is None:
        _original_send = HTTPAdapter.send
        HTTPAdapter.send = _traced_send  # type: ignore[method-assign]


def uninstall() -> None:
    global _original_send
    if _original_send is None:
        return
    from requests.adapters import HTTPAdapter

    HTTPAdapter.send = _original_send  # type: ignore[method-assign]
    _original_send = None
