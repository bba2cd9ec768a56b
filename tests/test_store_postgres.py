"""The store on a real PostgreSQL server: the same schema, append-only in the database, and report /
prune giving the same figures as on SQLite for the same rows, through a read-only role."""

from __future__ import annotations

import json
import subprocess
import sys

import psycopg
import pytest

from or_middleware.store import NotAStoreError, open_store_reader
from or_middleware.store.postgres import migrate
from or_middleware.store.rows import generation_row, security_rows
from or_middleware.store.sql import for_engine
from or_middleware.store.sqlite_writer import INSERT_GENERATION, INSERT_SECURITY
from tests.support.generations import sqlite_store
from tests.support.postgres import postgres  # noqa: F401  (the session fixture)
from tests.test_report import hand_made_spans

PASSWORD = "pw-CANARY-5e1f"


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "or_middleware", *argv], capture_output=True, text=True, timeout=120)


def load(url: str, spans) -> None:
    """The rows the SQLite store gets for ``spans``, inserted in one transaction."""
    with psycopg.connect(url) as connection:
        migrate(connection, url)
        with connection.transaction(), connection.cursor() as cursor:
            cursor.executemany(for_engine(INSERT_GENERATION, "postgresql"), [generation_row(s) for s in spans])
            cursor.executemany(for_engine(INSERT_SECURITY, "postgresql"),
                               [row for s in spans for row in security_rows(s)])


@pytest.fixture
def stores(postgres, tmp_path):  # noqa: F811
    """The same hand-made rows in a SQLite file and in a PostgreSQL database (URL of a read-only role)."""
    spans = hand_made_spans()
    sqlite_db = sqlite_store(tmp_path / "traces.db", spans)
    admin = postgres.new_database("store")
    load(admin, spans)
    reader = postgres.role(admin, "ui_reader", PASSWORD, grants="SELECT")
    return sqlite_db, admin, reader


def _close(a, b) -> None:
    if isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-15)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _close(a[key], b[key])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _close(x, y)
    else:
        assert a == b


@pytest.mark.parametrize("by", ["model", "user", "metadata.team", "provider"])
def test_report_gives_the_same_figures_on_postgresql_as_on_sqlite(stores, by):
    sqlite_db, _, reader = stores
    for extra in ([], ["--security"]):
        on_sqlite = cli("report", "--db", sqlite_db, "--since", "all", "--by", by, "--format", "json", *extra)
        on_postgres = cli("report", "--db", reader, "--since", "all", "--by", by, "--format", "json", *extra)
        assert on_sqlite.returncode == on_postgres.returncode == 0, on_postgres.stderr
        a, b = json.loads(on_sqlite.stdout), json.loads(on_postgres.stdout)
        assert PASSWORD not in on_postgres.stdout + on_postgres.stderr and "***" in b["db"]
        a.pop("db"), b.pop("db")
        _close(a, b)
    table_sqlite = cli("report", "--db", sqlite_db, "--since", "all", "--by", by).stdout
    table_postgres = cli("report", "--db", reader, "--since", "all", "--by", by).stdout
    assert table_sqlite.split("\n", 2)[2] == table_postgres.split("\n", 2)[2]  # every figure, as printed
    assert PASSWORD not in table_postgres


def test_the_read_only_role_reads_and_nothing_can_update_or_delete_rows(stores, postgres):  # noqa: F811
    _, admin, reader = stores
    with open_store_reader(reader) as store:
        assert store.engine == "postgresql" and store.totals().requests == 14
        assert store.generations(limit=5).total == 14 and len(store.generations(limit=5).rows) == 5
        with pytest.raises(Exception, match="read-only"):
            store.execute("INSERT INTO or_middleware_schema VALUES (1)")
    with psycopg.connect(admin, autocommit=True) as connection:  # even the owner
        for statement in ("UPDATE generations SET user_id = 'mallory'", "DELETE FROM generations",
                          "TRUNCATE generations", "DELETE FROM security_events"):
            with pytest.raises(psycopg.Error, match="append-only"):
                connection.execute(statement)  # type: ignore[arg-type]
        assert connection.execute("SELECT COUNT(*) FROM generations").fetchone() == (14,)


def test_prune_is_the_one_way_out(stores):
    _, admin, reader = stores
    refused = cli("prune", "--db", reader, "--older-than", "2d")  # the UI's role cannot delete
    assert refused.returncode == 1 and PASSWORD not in refused.stderr
    dry = cli("prune", "--db", admin, "--older-than", "2d", "--dry-run")
    assert dry.returncode == 0 and "would delete 1 generations and 0 security events" in dry.stdout
    done = cli("prune", "--db", admin, "--older-than", "2d")
    assert done.returncode == 0 and "deleted 1 generations" in done.stdout
    assert json.loads(cli("report", "--db", reader, "--since", "all", "--format", "json").stdout)[
        "overall"]["requests"] == 13


def test_a_database_that_is_not_a_store_is_refused(postgres):  # noqa: F811
    url = postgres.new_database("other_app")
    postgres.execute(url, "CREATE TABLE generations (id SERIAL PRIMARY KEY, prompt TEXT)")
    with pytest.raises(NotAStoreError, match="not an or_middleware store"):
        open_store_reader(url)
    result = cli("report", "--db", url)
    assert result.returncode == 1 and "not an or_middleware store" in result.stderr
    empty = cli("report", "--db", postgres.new_database("empty"))
    assert empty.returncode == 1 and "no or_middleware store" in empty.stderr
