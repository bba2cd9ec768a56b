"""The store's read paths built for a million rows give the exact figures of the simple ones.

Percentiles walked to in an index (SQLite, schema 5) equal the aggregate's and a sort in Python;
stores of older schemas are upgraded by the writer (SQLite and PostgreSQL) and still read, not
upgraded, by a reader; lists count their rows up to a cap. The speed itself is measured by
``benchmarks/store_scale.py``, never asserted here.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time

import httpx
import psycopg
import pytest

from benchmarks import store_data
from or_middleware.store import Filters, open_store_reader
from or_middleware.store.listing import COUNT_CAP
from or_middleware.store.percentiles import pick
from or_middleware.store.postgres import migrate
from or_middleware.store.schema import POSTGRES_MIGRATIONS, SCHEMA_VERSION, SQLITE_MIGRATIONS
from or_middleware.store.sql import for_engine
from or_middleware.store.sqlite import open_store
from or_middleware.store.sqlite_writer import INSERT_GENERATION, LocalStoreExporter
from or_middleware.ui import explorer_app
from tests.support.generations import genai_span
from tests.support.postgres import postgres  # noqa: F401  (the session fixture)

NOW_NS = time.time_ns()
DAY_NS = 86_400 * 10**9
LATENCY, TTFC = (50, 95, 99), (50, 95)
NEW_INDEXES = {"generations_model_time", "generations_duration", "generations_ttfc", "generations_model_duration",
               "generations_model_ttfc", "generations_time_figures", "generations_cost"}


def expected(db: str, column: str, points, since: int, model: str | None = None) -> dict[int, float | None]:
    """The percentiles by sorting every value in Python."""
    sql = f"SELECT {column} FROM generations WHERE {column} IS NOT NULL AND time_unix_nano >= ?"
    params: list = [since]
    if model is not None:
        sql += " AND COALESCE(response_model, request_model) = ?"
        params.append(model)
    with sqlite3.connect(db) as connection:
        values = sorted(v for (v,) in connection.execute(sql, params))
    found = pick(values, [p / 100 for p in points])
    return {p: None for p in points} if found is None else dict(zip(points, found, strict=True))


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    db = str(tmp_path_factory.mktemp("scale") / "traces.db")
    store_data.fill_sqlite(db, 3000, NOW_NS)
    return db


@pytest.mark.parametrize("days", [1, 7, 30, 365])
def test_walked_percentiles_are_the_sorted_values_ranks(store, days):
    since = NOW_NS - days * DAY_NS
    with open_store_reader(store) as reader:
        assert reader.schema_version == SCHEMA_VERSION >= 5
        overall = reader.totals(Filters(since_unix_nano=since))
        assert overall.latency_percentiles == expected(store, "duration_s", LATENCY, since)
        assert overall.ttfc_percentiles == expected(store, "ttfc_s", TTFC, since)
        for group in reader.grouped("model", Filters(since_unix_nano=since)):
            assert group.latency_percentiles == expected(store, "duration_s", LATENCY, since, group.key), group.key
            assert group.ttfc_percentiles == expected(store, "ttfc_s", TTFC, since, group.key), group.key


def test_walks_and_the_aggregate_agree_group_by_group(store):
    """A filter beyond the time range (min_duration_s=0 selects the same calls) takes the aggregate
    instead of the walk: the figures are identical."""
    since = NOW_NS - 7 * DAY_NS
    with open_store_reader(store) as reader:
        walked = {g.key: g for g in reader.grouped("model", Filters(since_unix_nano=since))}
        aggregated = {g.key: g for g in reader.grouped("model", Filters(since_unix_nano=since,
                                                                        min_duration_s=0.0))}
    assert walked.keys() == aggregated.keys()
    for key, group in walked.items():
        assert group.latency_percentiles == aggregated[key].latency_percentiles
        assert group.ttfc_percentiles == aggregated[key].ttfc_percentiles


def test_edge_ranges_one_value_two_values_none(tmp_path):
    db = str(tmp_path / "edge.db")
    exporter = LocalStoreExporter(db)
    start = NOW_NS / 1e9
    spans = [genai_span(start_s=start - 10, duration_s=2.0, request_model="solo", response_model="solo"),
             genai_span(start_s=start - 20, duration_s=1.0, request_model="pair", response_model="pair"),
             genai_span(start_s=start - 30, duration_s=3.0, request_model="pair", response_model="pair"),
             genai_span(start_s=start - 40, duration_s=5.0, request_model="", response_model=""),
             genai_span(start_s=start - 50, duration_s=7.0, request_model=None)]
    assert exporter.export(spans).name == "SUCCESS"
    exporter.shutdown()
    with open_store_reader(db) as reader:
        groups = {g.key: g for g in reader.grouped("model", Filters(since_unix_nano=NOW_NS - DAY_NS))}
        assert groups["solo"].latency_percentiles == {50: 2.0, 95: 2.0, 99: 2.0}
        assert groups["pair"].latency_percentiles == pytest.approx({50: 2.0, 95: 2.9, 99: 2.98})
        assert groups["(none)"].latency_percentiles == {50: 6.0, 95: 6.9, 99: 6.98}  # '' and NULL: one group
        assert groups["solo"].ttfc_percentiles == {50: None, 95: None}
        empty = reader.totals(Filters(since_unix_nano=NOW_NS + DAY_NS))  # a range with no call
        assert empty.requests == 0 and empty.latency_percentiles == {50: None, 95: None, 99: None}
        assert reader.grouped("model", Filters(since_unix_nano=NOW_NS + DAY_NS)) == []


def _older_store(path: str, rows: list[tuple], version: int) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    for migration in SQLITE_MIGRATIONS[:version]:
        for statement in migration:
            connection.execute(statement)
    connection.execute(f"PRAGMA user_version = {version}")
    connection.executemany(INSERT_GENERATION, rows)
    connection.close()


@pytest.mark.parametrize("version", [1, 4])
def test_an_older_store_reads_without_the_new_indexes_then_upgrades(tmp_path, version):
    db = str(tmp_path / f"v{version}.db")
    rows = [row for row, _ in store_data.rows(500, NOW_NS)]
    _older_store(db, rows, version)
    since = NOW_NS - 30 * DAY_NS
    with open_store_reader(db) as reader:  # read-only: no migration, so no index to walk
        assert reader.schema_version == version
        before = reader.totals(Filters(since_unix_nano=since))
        by_model = reader.grouped("model", Filters(since_unix_nano=since))
    assert before.latency_percentiles == expected(db, "duration_s", LATENCY, since)

    open_store(db).close()  # what the `local` destination does when it starts writing: migrate
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        names = {n for (n,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert names >= NEW_INDEXES
        assert connection.execute("SELECT COUNT(*) FROM generations").fetchone()[0] == 500
    with open_store_reader(db) as reader:
        assert reader.totals(Filters(since_unix_nano=since)) == before
        assert reader.grouped("model", Filters(since_unix_nano=since)) == by_model


def test_postgresql_upgrades_from_v1_and_gives_sqlites_figures(postgres, store):  # noqa: F811
    url = postgres.new_database("upgrade")
    with psycopg.connect(url, autocommit=True) as connection:  # a database written by schema version 1
        connection.execute("CREATE TABLE or_middleware_schema (version INTEGER NOT NULL)")
        connection.execute("INSERT INTO or_middleware_schema VALUES (1)")
        for statement in POSTGRES_MIGRATIONS[0]:
            connection.execute(statement)
        with sqlite3.connect(store) as source:
            rows = source.execute("SELECT * FROM generations ORDER BY id").fetchall()
        with connection.cursor() as cursor:
            cursor.executemany(for_engine(INSERT_GENERATION, "postgresql"), [row[1:] for row in rows])
    with psycopg.connect(url) as connection:
        assert migrate(connection, url) == 1
        names = {n for (n,) in connection.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'generations'")}
        assert names >= NEW_INDEXES
    since = NOW_NS - 30 * DAY_NS
    with open_store_reader(url) as on_pg, open_store_reader(store) as on_sqlite:
        assert on_pg.schema_version == SCHEMA_VERSION
        pg, lite = on_pg.grouped("model", Filters(since_unix_nano=since)), on_sqlite.grouped(
            "model", Filters(since_unix_nano=since))
        assert [g.key for g in pg] == [g.key for g in lite]
        for a, b in zip(pg, lite, strict=True):
            assert (a.requests, a.errors, a.input_tokens) == (b.requests, b.errors, b.input_tokens)
            for mine, theirs in ((a.latency_percentiles, b.latency_percentiles),
                                 (a.ttfc_percentiles, b.ttfc_percentiles)):
                assert mine.keys() == theirs.keys()
                for p, value in mine.items():  # PostgreSQL's percentile_cont; SQLite's walk
                    assert value == theirs[p] if value is None else value == pytest.approx(theirs[p], rel=1e-12)


def test_lists_count_up_to_the_cap(store):
    with open_store_reader(store) as reader:
        page = reader.generations(Filters(since_unix_nano=0), limit=10)
        assert (page.total, page.capped, len(page.rows)) == (COUNT_CAP, True, 10)
        few = reader.generations(Filters(since_unix_nano=0, equals={"user": "user-00003"}), limit=10)
        [(exact,)] = reader.execute("SELECT COUNT(*) FROM generations WHERE user_id = 'user-00003'")
        assert 0 < exact <= COUNT_CAP and (few.total, few.capped) == (exact, False)

    async def fetch(path: str) -> httpx.Response:
        app = explorer_app(store, auth=lambda request: True)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://explorer") as client:
            return await client.get(path)

    many = asyncio.run(fetch("/generations?since=all"))
    assert many.status_code == 200 and f"{COUNT_CAP:,}+ in all" in many.text and 'rel="next"' in many.text
    last = asyncio.run(fetch(f"/generations?since=all&size=200&page={-(-3000 // 200)}"))
    assert last.status_code == 200 and 'rel="next"' not in last.text
    one = asyncio.run(fetch("/generations?since=all&user=user-00003"))
    assert f"{exact} in all" in one.text


def test_a_range_past_2262_is_empty_not_an_error(store):
    """A date beyond what 64-bit nanoseconds hold (year 2262) bounds the range instead of failing to bind."""
    far = 2**70
    with open_store_reader(store) as reader:
        assert reader.totals(Filters(since_unix_nano=far)).requests == 0
        assert reader.generations(Filters(since_unix_nano=far)).rows == []
        assert reader.totals(Filters(until_unix_nano=far)).requests == 3000
        assert reader.security_events(Filters(since_unix_nano=far)).rows == []

    async def fetch(path: str) -> httpx.Response:
        app = explorer_app(store, auth=lambda request: True)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://explorer") as client:
            return await client.get(path)

    for path in ("/generations?since=2999-01-01", "/?since=2999-01-01", "/security?since=2999-01-01",
                 "/users?since=2999-01-01", "/generations?since=all&until=2999-01-01"):
        assert asyncio.run(fetch(path)).status_code == 200, path
