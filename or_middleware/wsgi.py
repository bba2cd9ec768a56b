"""LLMTracingWSGIMiddleware: the WSGI entry point (Flask, Django, any WSGI app)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from contextvars import Token
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.wsgi import collect_request_attributes, get_default_span_name, wsgi_getter
from opentelemetry.util.http import SanitizeValue, normalise_request_header_name, normalise_response_header_name

from or_middleware import context
from or_middleware.capture.call import log_once
from or_middleware.config import Settings
from or_middleware.identity import identity_from_wsgi, wsgi_header_names
from or_middleware.ratelimit import wsgi_429
from or_middleware.server_span import RequestSpan, ServerSpans, wants_every_server_span
from or_middleware.startup import StartupRefusal, start_tracing

logger = logging.getLogger(__name__)

WSGIApp = Any  # (environ, start_response) -> Iterable[bytes]


class _IdentityScopedBody:
    """The app's response body; the request identity stays current until it is closed,
    so LLM calls made while a streaming body is produced still belong to the request."""

    def __init__(
        self,
        body: Iterable[bytes],
        token: Token[Any] | None,
        on_close: Callable[[], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._body = body
        self._token = token
        self._on_close = on_close  # ends the request's server span, once the body is done
        self._on_error = on_error  # an exception while the body is produced fails the request

    def __iter__(self) -> Iterator[bytes]:
        chunks = iter(self._body)
        return chunks if self._on_error is None else self._observed(chunks, self._on_error)

    @staticmethod
    def _observed(chunks: Iterator[bytes], on_error: Callable[[BaseException], None]) -> Iterator[bytes]:
        # A plain loop, not ``yield from``: closing this generator must not close the app's
        # iterator a second time (the server closes it through close() below).
        try:
            for chunk in chunks:  # noqa: UP028 (see above)
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:  # the server's iteration failed: the span records it (OTel WSGI did too)
            on_error(exc)
            raise

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            if self._token is not None:
                # closed from another context (rare servers): nothing to undo
                with contextlib.suppress(ValueError):
                    context.leave(self._token)
                self._token = None
            on_close, self._on_close = self._on_close, None
            if on_close is not None:
                on_close()


class LLMTracingWSGIMiddleware:
    """``flask_app.wsgi_app = LLMTracingWSGIMiddleware(flask_app.wsgi_app)``."""

    def __init__(self, app: WSGIApp, settings: Settings | None = None) -> None:
        self.app = app
        try:
            tracing = start_tracing(settings)
        except Exception as exc:
            # WSGI has no start-up message: raised here, while the server loads the app, the server
            # refuses to start (gunicorn: "Worker failed to boot"; waitress-serve exits).
            raise StartupRefusal.from_exception(exc).error() from None
        self._tracing = tracing
        self.settings, self.runtime, self._rate_limiter = tracing.settings, tracing.runtime, tracing.rate_limiter
        self._header_names = wsgi_header_names(self.runtime)
        # Server spans on our private provider: at once when a destination exports every span,
        # else only for requests that make an LLM call (or_middleware/server_span.py).
        self._server_spans = ServerSpans(
            self.runtime.tracer_provider,
            eager=wants_every_server_span(self.settings),
            seen=self.runtime.wants_server_spans,
            runtime=self.runtime,
            describe=_describe,
            getter=wsgi_getter,
            request_headers=_request_headers,
            response_headers=_response_headers,
        )

    def __call__(self, environ: dict, start_response: Any) -> Iterable[bytes]:
        if trace.get_current_span().is_recording():
            return self._with_identity(environ, start_response)
        request = RequestSpan(self._server_spans, environ)
        undo = request.begin()

        def observed_start_response(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            code = status.split(" ", 1)[0]
            if code.isdigit():
                request.response_started(int(code), headers)
            return start_response(status, headers, *args)

        def finish() -> None:
            request.finish(undo)

        try:
            return self._with_identity(environ, observed_start_response, finish, request.failed)
        except BaseException as exc:
            request.failed(exc)
            finish()
            raise

    def _with_identity(
        self,
        environ: dict,
        start_response: Any,
        on_close: Callable[[], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> Iterable[bytes]:
        token = None
        try:
            token = context.enter(identity_from_wsgi(self.runtime, environ, self._header_names))
        except Exception:
            log_once("request identity")
        try:
            wait = self._tracing.rate_limit_wait()
            if wait is not None and self._rate_limiter is not None:  # answered here: the app never runs
                response = wsgi_429(start_response, self._rate_limiter.limit, wait)
                if token is not None:
                    context.leave(token)
                if on_close is not None:
                    on_close()
                return response
            body = self.app(environ, start_response)
        except BaseException:
            if token is not None:
                context.leave(token)
            raise
        return _IdentityScopedBody(body, token, on_close, on_error)


def _describe(environ: dict, mode: object) -> tuple[str, dict]:
    """The OpenTelemetry WSGI instrumentation's own span name and request attributes."""
    return get_default_span_name(environ), collect_request_attributes(environ, mode)


def _request_headers(environ: dict, sanitize: SanitizeValue, names: list[str]) -> dict[str, Any]:
    headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")}
    return sanitize.sanitize_header_values(headers, names, normalise_request_header_name)


def _response_headers(headers: list[tuple[str, str]], sanitize: SanitizeValue, names: list[str]) -> dict[str, Any]:
    merged: dict[str, str] = {}
    for key, value in headers or ():
        key = key.lower()
        merged[key] = f"{merged[key]},{value}" if key in merged else value
    return sanitize.sanitize_header_values(merged, names, normalise_response_header_name)
