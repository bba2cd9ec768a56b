"""LLMTracingMiddleware: the ASGI entry point (Starlette, FastAPI, any ASGI app)."""

from __future__ import annotations

import logging

import anyio.to_thread
from opentelemetry import trace
from opentelemetry.instrumentation.asgi import asgi_getter, collect_custom_headers_attributes
from opentelemetry.util.http import normalise_request_header_name, normalise_response_header_name
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from or_middleware import context
from or_middleware.asgi_attributes import describe_asgi
from or_middleware.capture.call import log_once
from or_middleware.config import Settings
from or_middleware.identity import asgi_header_names, identity_from_asgi
from or_middleware.ratelimit import send_asgi_429
from or_middleware.server_span import RequestSpan, ServerSpans, wants_every_server_span
from or_middleware.startup import StartupRefusal, start_tracing

logger = logging.getLogger(__name__)



class LLMTracingMiddleware:
    """Traces the LLM calls an ASGI app makes, as GenAI spans under the request's server span.

    ``app.add_middleware(LLMTracingMiddleware)`` reads ``OR_MIDDLEWARE_*`` variables;
    ``app.add_middleware(LLMTracingMiddleware, settings=Settings(...))`` takes them explicitly.
    """

    def __init__(self, app: ASGIApp, settings: Settings | None = None) -> None:
        self.app = app
        # A bad configuration must stop the server, not half-start it. Raised here, it would
        # escape from inside the framework's first call (Starlette builds its middleware stack
        # on the lifespan message): uvicorn's lifespan "auto" would then call lifespan
        # unsupported, start, and answer every request 500. So it is kept and answered as
        # ``lifespan.startup.failed`` (the server exits with our one line), or raised by every
        # request on a server that runs no lifespan.
        self._refusal: StartupRefusal | None = None
        try:
            tracing = start_tracing(settings)
        except Exception as exc:
            self._refusal = StartupRefusal.from_exception(exc)
            return
        self._tracing = tracing
        self.settings, self.runtime, self._rate_limiter = tracing.settings, tracing.runtime, tracing.rate_limiter
        self._header_names = asgi_header_names(self.runtime)
        # Server spans on our private provider: at once when a destination exports every span,
        # else only for requests that make an LLM call (or_middleware/server_span.py).
        self._server_spans = ServerSpans(
            self.runtime.tracer_provider,
            eager=wants_every_server_span(self.settings),
            seen=self.runtime.wants_server_spans,
            runtime=self.runtime,
            describe=describe_asgi,
            getter=asgi_getter,
            request_headers=lambda scope, sanitize, names: collect_custom_headers_attributes(
                scope, sanitize, names, normalise_request_header_name
            ),
            response_headers=lambda message, sanitize, names: collect_custom_headers_attributes(
                message, sanitize, names, normalise_response_header_name
            ),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if self._refusal is not None:
            await self._refusal.asgi(scope, receive, send)
        elif kind == "lifespan":
            await self.app(scope, receive, self._flushing_send(send))
        elif kind != "http":
            await self.app(scope, receive, send)
        elif trace.get_current_span().is_recording():
            # The app already has a server span (FastAPIInstrumentor, opentelemetry-instrument): no second one.
            await self._with_identity(scope, receive, send)
        else:
            await self._traced(scope, receive, send)

    async def _traced(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = RequestSpan(self._server_spans, scope)
        undo = request.begin()

        async def observed_send(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                request.response_started(message["status"], message)
            await send(message)
            if kind == "http.response.body" and not message.get("more_body", False):
                request.response_done()

        try:
            await self._with_identity(scope, receive, observed_send)
        except BaseException as exc:
            request.failed(exc)
            raise
        finally:
            request.finish(undo)

    async def _with_identity(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = None
        try:
            token = context.enter(identity_from_asgi(self.runtime, scope, self._header_names))
        except Exception:
            log_once("request identity")
        try:
            wait = self._tracing.rate_limit_wait()
            if wait is not None and self._rate_limiter is not None:  # answered here: the app never runs
                await send_asgi_429(send, self._rate_limiter.limit, wait)
                return
            await self.app(scope, receive, send)
        finally:
            if token is not None:
                context.leave(token)

    def _flushing_send(self, send: Send) -> Send:
        async def flushing_send(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                try:
                    await anyio.to_thread.run_sync(self.runtime.flush_for_shutdown)
                except Exception:
                    logger.exception("or_middleware: flush on shutdown failed")
            await send(message)

        return flushing_send

