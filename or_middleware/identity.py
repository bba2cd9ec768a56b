"""Reading the request identity (user, session, trace name) from an inbound request."""

from __future__ import annotations

from collections.abc import Iterable

from or_middleware.context import RequestIdentity
from or_middleware.runtime import TracingRuntime


def identity_from_asgi(runtime: TracingRuntime, scope: dict, names: tuple[bytes, bytes]) -> RequestIdentity:
    user_name, session_name = names
    user = session = None
    headers: Iterable[tuple[bytes, bytes]] = scope.get("headers") or ()
    for key, value in headers:
        if key == user_name:
            user = value.decode("latin-1")
        elif key == session_name:
            session = value.decode("latin-1")
    return RequestIdentity(runtime, user or None, session or None, _trace_name(runtime, scope))


def identity_from_wsgi(runtime: TracingRuntime, environ: dict, names: tuple[str, str]) -> RequestIdentity:
    user_key, session_key = names
    return RequestIdentity(
        runtime,
        environ.get(user_key) or None,
        environ.get(session_key) or None,
        runtime.settings.trace_name or f"{environ.get('REQUEST_METHOD', 'GET')} {environ.get('PATH_INFO') or '/'}",
    )


def asgi_header_names(runtime: TracingRuntime) -> tuple[bytes, bytes]:
    settings = runtime.settings
    return settings.user_header.encode("latin-1"), settings.session_header.encode("latin-1")


def wsgi_header_names(runtime: TracingRuntime) -> tuple[str, str]:
    settings = runtime.settings

    def key(header: str) -> str:
        return "HTTP_" + header.upper().replace("-", "_")

    return key(settings.user_header), key(settings.session_header)


def _trace_name(runtime: TracingRuntime, scope: dict) -> str:
    configured = runtime.settings.trace_name
    if configured:
        return configured
    return f"{scope.get('method', 'GET')} {scope.get('path') or '/'}"
