"""LLMTracingWSGIMiddleware: the WSGI entry point (Flask, Django, any WSGI app)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator
from contextvars import Token
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from opentelemetry.metrics import NoOpMeterProvider

from or_middleware import context
from or_middleware.capture.call import log_once
from or_middleware.config import Settings
from or_middleware.identity import identity_from_wsgi, wsgi_header_names
from or_middleware.inbound import redact_server_span
from or_middleware.ratelimit import wsgi_429
from or_middleware.startup import StartupRefusal, start_tracing

logger = logging.getLogger(__name__)

WSGIApp = Any  # (environ, start_response) -> Iterable[bytes]


class _IdentityScopedBody:
    """The app's response body; the request identity stays current until it is closed,
    so LLM calls made while a streaming body is produced still belong to the request."""

    def __init__(self, body: Iterable[bytes], token: Token[Any] | None) -> None:
        self._body = body
        self._token = token

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

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
        self._traced = OpenTelemetryMiddleware(
            self._with_identity,
            tracer_provider=self.runtime.tracer_provider,
            meter_provider=NoOpMeterProvider(),
            request_hook=redact_server_span,  # no credential in URL attributes or captured headers
            response_hook=redact_server_span,
        )

    def __call__(self, environ: dict, start_response: Any) -> Iterable[bytes]:
        if trace.get_current_span().is_recording():
            return self._with_identity(environ, start_response)
        return self._traced(environ, start_response)

    def _with_identity(self, environ: dict, start_response: Any) -> Iterable[bytes]:
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
                return response
            body = self.app(environ, start_response)
        except BaseException:
            if token is not None:
                context.leave(token)
            raise
        return _IdentityScopedBody(body, token)
