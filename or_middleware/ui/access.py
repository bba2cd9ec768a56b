"""Who may read the Explorer: a pure ASGI guard in front of every route, static files included.

- Only GET and HEAD: the Explorer changes nothing, so there is no form a foreign page could post.
- ``allowed_hosts``: the Host header must name one of them (the CLI's loopback default), so a
  web page that rebinds its own DNS name to 127.0.0.1 cannot read the Explorer as same-origin.
- ``authorize(request)``: the caller's check (a mounted Explorer), or ``TokenCheck`` (the CLI):
  a bearer token in the Authorization header, or ``?token=`` once, which sets an HttpOnly,
  SameSite=Strict cookie and redirects to the same page without the token in its address.
- Every answer carries a Content-Security-Policy allowing only the Explorer's own scripts and
  styles, no framing, no referrer (a token in an address never leaks in a Referer header).
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
from collections.abc import Awaitable, Callable, Collection
from urllib.parse import urlencode

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Authorize = Callable[[Request], "bool | Awaitable[bool]"]
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
COOKIE = "or_middleware_ui"
MIN_TOKEN_CHARS = 16
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "cross-origin-resource-policy": "same-origin",
}


def host_name(host_header: str) -> str:
    """The name in a Host header, without the port (``[::1]:8765`` -> ``[::1]``)."""
    if host_header.startswith("["):
        return host_header.split("]", 1)[0] + "]"
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class TokenCheck:
    """The CLI's authorization: one shared secret, compared in constant time."""

    def __init__(self, token: str) -> None:
        if len(token) < MIN_TOKEN_CHARS:
            raise ValueError(f"the token must be at least {MIN_TOKEN_CHARS} characters")
        self._token = token.encode()
        # The cookie holds a value derived from the token, not the token itself.
        self._cookie = hmac.new(self._token, b"or-middleware-ui-cookie", hashlib.sha256).hexdigest().encode()

    def matches(self, offered: str | None) -> bool:
        return offered is not None and hmac.compare_digest(offered.encode(), self._token)

    def cookie_matches(self, offered: str | None) -> bool:
        return offered is not None and hmac.compare_digest(offered.encode(), self._cookie)

    def __call__(self, request: Request) -> bool:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.matches(credentials.strip()):
            return True
        return self.cookie_matches(request.cookies.get(COOKIE))

    def login(self, request: Request) -> Response | None:
        """``?token=`` that matches: the cookie, and the same address without the token. Else None."""
        if not self.matches(request.query_params.get("token")):
            return None
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        # One leading slash: "//evil.example/" would be a redirect to another site.
        target = "/" + request.url.path.lstrip("/")
        response = RedirectResponse(target + (f"?{urlencode(rest)}" if rest else ""), status_code=303)
        response.set_cookie(COOKIE, self._cookie.decode(), httponly=True, samesite="strict",
                            path=request.scope.get("root_path") or "/")
        return response


class AccessGuard:
    """ASGI middleware: method, Host and authorization checks, then security headers on every answer."""

    def __init__(self, app: ASGIApp, *, authorize: Authorize, allowed_hosts: Collection[str] | None = None) -> None:
        self.app = app
        self.authorize = authorize
        self.allowed_hosts = None if allowed_hosts is None else frozenset(h.lower() for h in allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # no websockets here
            await send({"type": "websocket.close", "code": 1008})
            return

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        refusal = await self._refusal(Request(scope))
        if refusal is not None:
            await refusal(scope, receive, secured)
            return
        await self.app(scope, receive, secured)

    async def _refusal(self, request: Request) -> Response | None:
        if request.method not in ("GET", "HEAD"):
            return PlainTextResponse("the Activity Explorer is read-only: GET only\n", 405, {"allow": "GET, HEAD"})
        if self.allowed_hosts is not None and host_name(request.headers.get("host", "")).lower() \
                not in self.allowed_hosts:
            return PlainTextResponse("unknown Host header (the Explorer answers on its loopback name only)\n", 421)
        if isinstance(self.authorize, TokenCheck) and (login := self.authorize.login(request)) is not None:
            return login
        try:
            allowed = self.authorize(request)
            if inspect.isawaitable(allowed):
                allowed = await allowed
        except Exception:  # a failing check is a refusal, never an open door
            allowed = False
        if allowed is True:  # only True: a check returning a truthy object by mistake does not open the door
            return None
        if isinstance(self.authorize, TokenCheck):
            return PlainTextResponse(
                "401: this Activity Explorer needs its token: open it once with ?token=<the token>, "
                "or send Authorization: Bearer <the token>\n", 401, {"www-authenticate": "Bearer"})
        return PlainTextResponse("401: not authorized\n", 401)
