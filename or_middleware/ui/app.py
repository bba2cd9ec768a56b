"""``explorer_app(db, auth=...)``: the Activity Explorer as a Starlette app, to serve or to mount.

The app only reads: the store is opened read-only per request, every route is GET, and every
string from the store reaches the page through Jinja2 with autoescaping on (chart data as JSON
in a non-executable ``<script type="application/json">`` block, ``<``/``>``/``&`` escaped).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from or_middleware.store import StoreError
from or_middleware.ui.access import LOOPBACK_HOSTS, AccessGuard, Authorize, TokenCheck
from or_middleware.ui.filters import BadParameter
from or_middleware.ui.source import ReadOnlyStore, StoreUnavailable

HERE = Path(__file__).parent


def local_time(unix_nano: int | None) -> str:
    if unix_nano is None:
        return "-"
    return datetime.fromtimestamp(unix_nano / 1e9, tz=UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _usd(value: float | None, digits: int = 6) -> str:
    return "-" if value is None else f"${value:,.{digits}f}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.3f} s"


def _count(value: int | float | None) -> str:
    return "-" if value is None else f"{int(value):,}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True, lstrip_blocks=True,
    )
    environment.filters.update(time=local_time, usd=_usd, seconds=_seconds, integer=_count, percent=_percent)
    return environment


TEMPLATES = _environment()


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    page = TEMPLATES.get_template(template).render(base=request.scope.get("root_path", ""), request=request,
                                                   path=request.url.path, **context)
    return HTMLResponse(page, status_code)


class SafeJSONResponse(JSONResponse):
    """JSON with <, >, & and ' written as \\u escapes: harmless even if a browser sniffed it as HTML."""

    def render(self, content: Any) -> bytes:
        text: Markup = htmlsafe_json_dumps(content, default=_number)
        return str(text).encode()


def _number(value: Any) -> Any:
    """JSON for a PostgreSQL numeric (a sum of integers arrives as Decimal)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def store_of(request: Request) -> ReadOnlyStore:
    return request.app.state.store


async def _bad_parameter(request: Request, exc: Exception) -> Response:
    return render(request, "error.html", 400, title="Bad parameter", message=str(exc))


async def _unavailable(request: Request, exc: Exception) -> Response:
    return render(request, "error.html", 503, title="Store unavailable", message=str(exc))


async def _store_error(request: Request, exc: Exception) -> Response:
    # a SQLite message names the problem; another driver's may hold connection details: its kind only
    detail = str(exc) if isinstance(exc, sqlite3.Error) else type(exc).__name__
    return render(request, "error.html", 500, title="Store error", message=f"the store could not be read: {detail}")


async def _not_found(request: Request, exc: Exception) -> Response:
    return render(request, "error.html", 404, title="Not found", message="nothing here")


def _driver_errors() -> dict[type[Exception], Any]:
    try:
        import psycopg
    except ImportError:
        return {}
    return {psycopg.Error: _store_error}


def explorer_app(db: str | Path, *, auth: Authorize, allowed_hosts: Collection[str] | None = None) -> Starlette:
    """The Activity Explorer over the store ``db`` (read-only), for ``app.mount("/llm", ...)``.

    ``auth(request)`` runs before every request (pages, data and static files) and must return
    ``True`` (or an awaitable of ``True``) to let it through; anything else answers 401.
    ``allowed_hosts``: when given, a request whose Host header names another host answers 421.
    """
    if not callable(auth):
        raise TypeError("explorer_app needs auth=<callable(request) -> bool>: the Explorer shows user data")
    from or_middleware.ui import pages

    store = ReadOnlyStore(db)
    app = Starlette(
        routes=[
            *pages.ROUTES,
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        exception_handlers={
            BadParameter: _bad_parameter, StoreUnavailable: _unavailable, sqlite3.Error: _store_error,
            StoreError: _store_error, **_driver_errors(),
            404: _not_found,
        },
    )
    app.state.store = store
    app.add_middleware(AccessGuard, authorize=auth, allowed_hosts=allowed_hosts)
    return app


def standalone_app(db: str | Path, *, token: str | None, host: str) -> Starlette:
    """The app `or-middleware ui` serves: a token when one is set; on loopback, loopback Host names only."""
    if token is None:
        if not is_loopback(host):
            raise ValueError(f"binding {host} (not loopback) needs a token: set OR_MIDDLEWARE_UI_TOKEN "
                             "(or pass --token) to a secret of 16+ characters, or bind 127.0.0.1")
        return explorer_app(db, auth=_anyone_on_loopback, allowed_hosts=LOOPBACK_HOSTS)
    check = TokenCheck(token)
    return explorer_app(db, auth=check, allowed_hosts=LOOPBACK_HOSTS if is_loopback(host) else None)


def _anyone_on_loopback(request: Request) -> bool:
    return True  # the socket is bound to loopback and the Host header was checked


def is_loopback(host: str) -> bool:
    import ipaddress

    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name that may resolve anywhere

