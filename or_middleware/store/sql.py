"""What differs between the store's two engines, in one place: placeholders, JSON, URLs for messages.

Every query of the store is written once, with ``?`` placeholders and SQL both engines speak
(``COALESCE``, ``CASE``, window functions, ``NULLS LAST``). :func:`for_engine` turns it into the
engine's own form: psycopg takes ``%s`` (and ``%%`` for a literal percent sign).
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

Engine = Literal["sqlite", "postgresql"]
POSTGRES_SCHEMES = ("postgresql", "postgres")

# A string literal, a quoted identifier, or one character that matters outside them.
_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|[?%]")
# A metadata key that SQLite's JSON path can name as `$."key"` (anything else goes through json_each).
_PLAIN_KEY = re.compile(r'^[^"\\]+$')
_SECRET_QUERY = frozenset({"password", "sslpassword", "passfile", "sslkey"})
# libpq's key=value form (host=db password=...), which a user may pass where a URL or a path goes
_CONNINFO_SECRET = re.compile(r"\b((?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)")


def is_postgres_url(db: str) -> bool:
    # not urlsplit: it raises on a malformed host ("[::1/db"), and this decides how to mask the URL
    scheme, sep, _ = db.partition("://")
    return bool(sep) and scheme.strip().lower() in POSTGRES_SCHEMES


def for_engine(sql: str, engine: Engine) -> str:
    """``sql`` written with ``?`` placeholders, in the form ``engine``'s driver takes."""
    if engine == "sqlite":
        return sql

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "?":
            return "%s"
        if token == "%":
            return "%%"
        return token.replace("%", "%%")  # psycopg reads % inside literals too

    return _TOKENS.sub(replace, sql)


def quote_literal(text: str) -> str:
    """``text`` as an SQL string literal (both engines: quotes doubled)."""
    return "'" + text.replace("'", "''") + "'"


def metadata_value(engine: Engine, key: str) -> str:
    """The SQL expression of metadata key ``key`` (text, NULL when absent) of a generations row."""
    if engine == "postgresql":
        return f"(metadata::jsonb ->> {quote_literal(key)})"
    if _PLAIN_KEY.match(key):
        return f"json_extract(metadata, {quote_literal('$.' + chr(34) + key + chr(34))})"
    # SQLite's JSON paths cannot spell a key with a quote or a backslash: look it up by name.
    return f"(SELECT value FROM json_each(metadata) WHERE key = {quote_literal(key)})"


def display_url(db: str) -> str:
    """``db`` fit to print or log: a PostgreSQL URL loses its password (and password-like parameters)."""
    if not is_postgres_url(db):
        return _CONNINFO_SECRET.sub(r"\1***", db)
    try:
        parts = urlsplit(db)
    except ValueError:  # e.g. an unclosed "[" of an IPv6 host: user and host only, never what follows
        scheme, _, rest = db.partition("://")
        userinfo, at, host = rest.partition("?")[0].rpartition("@")
        user = userinfo.split(":", 1)[0]
        return f"{scheme}://{user}{':***' if ':' in userinfo else ''}{at}{host}{'?***' if '?' in rest else ''}"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}{':***' if ':' in userinfo else ''}@{hostport}"
    query = urlencode([(k, "***" if k.lower() in _SECRET_QUERY else v) for k, v in parse_qsl(parts.query)],
                      safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def without_secrets(text: str, db: str) -> str:
    """``text`` (an error message) with the password of ``db`` taken out wherever it appears."""
    if not is_postgres_url(db):
        for match in _CONNINFO_SECRET.finditer(db):
            for secret in sorted({match.group(2), match.group(2).strip("'")}, key=len, reverse=True):
                text = text.replace(secret, "***") if secret else text
        return text
    from psycopg.conninfo import conninfo_to_dict

    try:
        secrets = [v for k, v in conninfo_to_dict(db).items() if k in _SECRET_QUERY and v]
    except Exception:  # a URL psycopg cannot parse
        secrets = []
    userinfo = re.split(r"[/?#]", db.partition("://")[2], maxsplit=1)[0].rpartition("@")[0]  # urlsplit's netloc
    if ":" in userinfo:  # as written in the URL (percent-encoded) and decoded
        secrets += [userinfo.split(":", 1)[1], unquote(userinfo.split(":", 1)[1])]
    text = text.replace(db, display_url(db))
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return text
