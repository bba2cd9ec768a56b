"""Adversarial review of issue 13's fleet store and store at scale (PostgreSQL writer, percentiles,
capped counts), from outside: malformed store locations, credentials, a hanging or restarting server."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from or_middleware import ConfigError, Settings
from or_middleware.store.sql import display_url, is_postgres_url, without_secrets
from tests.support.postgres import postgres  # noqa: F401  (the session fixture)

CANARY = "pwCANARY7f3a"


def _local(monkeypatch, **variables: str) -> None:
    for name in list(os.environ):
        if name.startswith("OR_MIDDLEWARE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("OR_MIDDLEWARE_DESTINATIONS", "local")
    for name, value in variables.items():
        monkeypatch.setenv(f"OR_MIDDLEWARE_LOCAL__{name}", value)


@pytest.mark.parametrize(("url", "hint"), [
    # urlsplit raised ValueError on it: pydantic's "OR_MIDDLEWARE_LOCAL__?: Value error, Invalid IPv6 URL"
    (f"postgresql://app:{CANARY}@[::1/llm", "IPv6"),
    # libpq's message ends with a newline: the line was two
    (f"postgresql://app:{CANARY}@db/llm?bogus=1", "bogus"),
    (f"postgresql://app:{CANARY}%ZZ@db/llm", "percent"),
    # libpq's key=value form was taken for a SQLite file name: a file named after the password, shown by check
    (f"host=db user=app password={CANARY} dbname=llm", "write it as a URL"),
    (f"dbname=llm password='{CANARY} x'", "write it as a URL"),
])
def test_a_malformed_store_url_stops_start_up_with_one_line_naming_the_variable(monkeypatch, url, hint):
    _local(monkeypatch, URL=url)
    with pytest.raises(ConfigError) as raised:
        Settings().destination_settings()
    message = str(raised.value)
    assert "OR_MIDDLEWARE_LOCAL__URL" in message and hint in message, message
    assert "\n" not in message and CANARY not in message


@pytest.mark.parametrize("db", [f"postgresql://app:{CANARY}@[::1/llm", f"host=db user=app password={CANARY} dbname=x",
                                f"host=db password='{CANARY} x'"])
def test_masking_a_malformed_or_key_value_location_never_raises_nor_shows_the_password(db):
    assert CANARY not in display_url(db)
    said = f"{CANARY} x" if f"{CANARY} x" in db else CANARY  # the password as the driver would quote it
    assert CANARY not in without_secrets(f"cannot read {db}: it says {said}", db)
    assert is_postgres_url(db) == db.startswith("postgresql")


@pytest.mark.parametrize("command", [["report"], ["tail", "-n", "1"], ["prune", "--older-than", "1d", "--dry-run"],
                                     ["ui", "--port", "0"]])
@pytest.mark.parametrize("db", [f"postgresql://app:{CANARY}@[::1/llm", f"host=db user=app password={CANARY} dbname=x"])
def test_read_commands_given_a_malformed_location_say_one_line_without_the_password(tmp_path, command, db):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OR_MIDDLEWARE_")}
    result = subprocess.run([sys.executable, "-m", "or_middleware", *command, "--db", db], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path, env=env)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in output, output
    *usage, said = output.strip().splitlines()  # argparse's usage lines may come first (--db refused)
    assert CANARY not in output and said.startswith("or-middleware"), output
    assert all(line.startswith(("usage:", " ")) for line in usage), output
    assert list(tmp_path.iterdir()) == []  # no file created by a read command


# -- a schema migration that takes longer than TIMEOUT ----------------------------------------------

def test_a_migration_longer_than_the_writers_timeout_completes(postgres):  # noqa: F811
    """Schema 5 builds five indexes: over a 1,000,000-row PostgreSQL store at schema 4 that took 32 s
    here, and the writer cut every attempt at TIMEOUT (10 s; statement_timeout and its watchdog), rolled
    it back and tried again for ever: no fleet instance ever wrote again. Made deterministic: an older
    writer's open transaction holds the table for 3 s, TIMEOUT is 1 s."""
    import threading

    import psycopg

    from or_middleware.store.postgres_writer import PostgresStoreTransport
    from or_middleware.store.row_batch import StoreRows
    from or_middleware.store.schema import POSTGRES_MIGRATIONS, SCHEMA_VERSION
    from tests.support.generations import genai_span

    url = postgres.new_database("slow_migration")
    with psycopg.connect(url, autocommit=True) as connection:  # a store of the previous schema
        connection.execute("CREATE TABLE or_middleware_schema (version INTEGER NOT NULL)")
        connection.execute(f"INSERT INTO or_middleware_schema VALUES ({SCHEMA_VERSION - 1})")
        for migration in POSTGRES_MIGRATIONS[:-1]:
            for statement in migration:
                connection.execute(statement)
    holder = psycopg.connect(url)
    holder.execute("LOCK TABLE generations IN ROW EXCLUSIVE MODE")  # as an INSERT not yet committed
    release = threading.Timer(3.0, holder.commit)
    release.start()
    transport = PostgresStoreTransport(url, timeout=1)
    try:
        result = transport.send(StoreRows().encode([genai_span(request_model="after-upgrade")]))
    finally:
        transport.close()
        release.join()
        holder.close()
    assert result.delivered, result.reason
    with psycopg.connect(url) as connection:
        assert connection.execute("SELECT version FROM or_middleware_schema").fetchone() == (SCHEMA_VERSION,)
        assert connection.execute("SELECT request_model FROM generations").fetchall() == [("after-upgrade",)]


# -- a NUL byte in a UI filter on PostgreSQL -------------------------------------------------------

def test_a_nul_in_a_filter_finds_what_the_writer_stored_and_is_no_server_error(postgres):  # noqa: F811
    """PostgreSQL text cannot hold NUL: /generations?user=a%00b answered 500 (SQLite: 200). The writer
    stores a NUL as U+FFFD (rows.py), so the filter now looks for that, on both engines' terms."""
    import asyncio

    import httpx

    from or_middleware.store.postgres_writer import PostgresStoreTransport
    from or_middleware.store.row_batch import StoreRows
    from or_middleware.ui import explorer_app
    from tests.support.generations import genai_span

    url = postgres.new_database("nul_filter")
    transport = PostgresStoreTransport(url, timeout=10)
    try:
        assert transport.send(StoreRows().encode([genai_span(request_model="m", user="a\x00b"),
                                                  genai_span(request_model="m", user="other")])).delivered
    finally:
        transport.close()

    async def fetch(path: str) -> httpx.Response:
        app = explorer_app(url, auth=lambda request: True)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://explorer") as client:
            return await client.get(path)

    found = asyncio.run(fetch("/generations?since=all&user=a%00b"))
    assert found.status_code == 200 and "1 in all" in found.text, found.text[-2000:]
    assert asyncio.run(fetch("/generations?since=all&model=%00")).status_code == 200


# -- the UI over a schema-1 SQLite store (no security_events table; read, never upgraded) ----------

def test_every_page_answers_over_a_schema_1_store_and_leaves_it_unchanged(tmp_path):
    """/security answered 500 (no such table: security_events) on a store the UI may not upgrade."""
    import asyncio
    import hashlib

    import httpx

    from benchmarks import store_data
    from or_middleware.ui import explorer_app
    from tests.test_store_scale import NOW_NS, _older_store

    db = str(tmp_path / "v1.db")
    rows = [row for row, _ in store_data.rows(50, NOW_NS)]
    _older_store(db, rows, 1)
    before = hashlib.sha256((tmp_path / "v1.db").read_bytes()).hexdigest()

    async def statuses() -> dict[str, int]:
        app = explorer_app(db, auth=lambda request: True)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://explorer") as client:
            user = rows[0][7]
            paths = ["/?since=all", "/models?since=all", "/generations?since=all", "/generations/1",
                     "/traces?since=all", "/sessions?since=all", "/users?since=all", f"/user?id={user}&since=all",
                     "/security?since=all", "/live"]
            return {path: (await client.get(path)).status_code for path in paths}

    assert set(asyncio.run(statuses()).values()) == {200}, asyncio.run(statuses())
    assert hashlib.sha256((tmp_path / "v1.db").read_bytes()).hexdigest() == before
