"""Where a store is: a SQLite file path, ``sqlite:///path``, or a ``postgresql://`` URL.

:func:`store_location_problem` is what start-up checks (``OR_MIDDLEWARE_LOCAL__URL`` / ``PATH``):
an unknown scheme, a URL libpq cannot parse, or psycopg missing for a PostgreSQL URL each stop
start-up with one line. Nothing here connects; messages never hold a password.
"""

from __future__ import annotations

import re

from or_middleware.store.sql import POSTGRES_SCHEMES, display_url, without_secrets

SQLITE_SCHEME = "sqlite"
_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
EXPECTED = "expected a SQLite file path (./or_traces.db) or postgresql://user@host/db"
# libpq's "keyword=value" form (host=db user=app password=...): taken as a file name it would become a
# SQLite file named after the password, printed by check and the start-up line
_CONNINFO = re.compile(r"(?:^|\s)(?:host|hostaddr|port|dbname|user|password|passfile|service|sslmode)\s*=")


def _scheme(location: str) -> str | None:
    head, sep, _ = location.partition("://")
    return head.lower() if sep and head.replace("+", "").replace("-", "").replace(".", "").isalnum() else None


def _sqlite_path(location: str) -> str:
    """``sqlite:///relative.db`` -> ``relative.db``; ``sqlite:////abs/x.db`` -> ``/abs/x.db`` (SQLAlchemy's form)."""
    rest = location.split("://", 1)[1]
    return rest[1:] if rest.startswith("/") else rest


def store_location_problem(location: str) -> tuple[str, str | None]:
    """``(the store as the engines take it, why it cannot be used or None)``."""
    location = location.strip()
    scheme = _scheme(location)
    if scheme is None:
        if looks_like_conninfo(location):
            return location, ("a libpq key=value string, which is not taken here: write it as a URL, "
                              "postgresql://user:password@host:port/dbname")
        return location, None if location else f"empty; {EXPECTED}"
    if scheme == SQLITE_SCHEME:
        path = _sqlite_path(location)
        return path, None if path else f"names no file; {EXPECTED}"
    if scheme not in POSTGRES_SCHEMES:
        hint = " (drop the driver name: postgresql://...)" if scheme.startswith("postgres") else ""
        return location, f"unsupported scheme {scheme!r}{hint}; {EXPECTED}"
    try:
        import psycopg_pool  # noqa: F401
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        return location, "a PostgreSQL store needs psycopg and psycopg-pool: pip install 'or-middleware[postgres]'"
    try:
        params = conninfo_to_dict(location)
    except Exception as exc:  # psycopg.ProgrammingError: a URL libpq cannot parse
        reason = " ".join(str(exc).split())  # libpq's message ends with a newline: one line
        return location, without_secrets(f"not a valid PostgreSQL URL ({reason}); {EXPECTED}", location)
    # libpq parses these only when it connects: say so now, not on the exporter thread later
    ports = str(params.get("port") or "").split(",")
    if not all(port.isdigit() and 0 < int(port) < 65536 for port in ports if port):
        return location, "the port must be a number from 1 to 65535"
    if params.get("sslmode") not in (None, *_SSLMODES):
        return location, f"sslmode must be one of {', '.join(_SSLMODES)}"
    return location, None


def looks_like_conninfo(location: str) -> bool:
    """Whether ``location`` is written in libpq's ``keyword=value`` form (it may hold a password)."""
    return "://" not in location and bool(_CONNINFO.search(location))


def shown_location(location: str) -> str:
    """The store fit to print: a path as given, a URL without its password."""
    return display_url(location)
