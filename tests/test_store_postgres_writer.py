"""The ``local`` destination writing a shared PostgreSQL store (``OR_MIDDLEWARE_LOCAL__URL=postgresql://...``):
a real app's calls through the middleware become the same rows as in SQLite, once each, on a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import psycopg
import pytest
from opentelemetry.sdk.trace import Event

import or_middleware
from or_middleware import ConfigError, Settings
from or_middleware.config import LocalDestination
from or_middleware.security.events import EVENT_PREFIX
from or_middleware.store.postgres_writer import PostgresStoreTransport
from or_middleware.store.row_batch import StoreRows, decode_batch
from or_middleware.store.schema import GENERATION_COLUMNS
from tests.apps import chat_body
from tests.support.generations import genai_span, rows, sqlite_store
from tests.support.postgres import postgres  # noqa: F401  (the session fixture)
from tests.test_store import serve_traced
from tests.test_store_postgres import cli

ALICE = {"x-user-id": "alice", "x-session-id": "sess-1"}


def pg_rows(url: str, sql: str = "SELECT * FROM generations ORDER BY time_unix_nano, span_id") -> list[dict]:
    with psycopg.connect(url) as connection, connection.cursor(row_factory=psycopg.rows.dict_row) as cursor:
        return cursor.execute(sql).fetchall()  # type: ignore[arg-type]


def test_the_middleware_writes_the_same_rows_to_postgresql_as_to_sqlite(upstream, postgres, tmp_path):  # noqa: F811
    url = postgres.new_database("writer")
    sqlite_db = str(tmp_path / "traces.db")
    on_postgres = LocalDestination(name="local", url=url, schedule_delay_ms=50, spool_dir=str(tmp_path / "spool"))
    on_sqlite = LocalDestination(name="local_file", url=sqlite_db, schedule_delay_ms=50)
    with serve_traced(upstream, on_postgres, on_sqlite) as app, httpx.Client(base_url=app, timeout=30) as client:
        client.post("/ask", json=chat_body("hello there", trace={"order": "A-17"}), headers=ALICE).raise_for_status()
        with client.stream("POST", "/relay", json=chat_body("stream this please", stream=True),
                           headers={"x-user-id": "bob", "x-fake-chunk-delay-ms": "0"}) as response:
            b"".join(response.iter_raw())
        assert client.post("/ask", json=chat_body("fail", model="fake/error_429"), headers=ALICE).status_code == 429
        assert or_middleware.force_flush()
    stored, expected = pg_rows(url), rows(sqlite_db, "SELECT * FROM generations ORDER BY time_unix_nano, span_id")
    assert len(stored) == len(expected) == 3
    for a, b in zip(stored, expected, strict=True):
        assert {c: a[c] for c in GENERATION_COLUMNS} == {c: b[c] for c in GENERATION_COLUMNS}
    assert or_middleware.stats()["local"]["exported"] == 3
    assert not (tmp_path / "spool").exists()  # a healthy database leaves nothing on disk


def test_a_batch_sent_again_adds_nothing(postgres):  # noqa: F811
    """A commit whose answer was lost: the spool re-sends the batch; no generation or signal doubles."""
    url = postgres.new_database("again")
    injection = genai_span(request_model="m", user="mallory", events=[
        Event(EVENT_PREFIX + "injection", {EVENT_PREFIX + "phrase": "ignore previous instructions"}, 1)])
    spans = [genai_span(request_model="m", user=f"u{i}") for i in range(5)] + [injection]
    body = StoreRows().encode(spans)
    transport = PostgresStoreTransport(url, timeout=10)
    try:
        assert transport.send(body).delivered and transport.inserted == 6
        assert transport.send(body).delivered and transport.inserted == 6
        more = StoreRows().encode([*spans[:2], genai_span(request_model="m", user="new")])
        assert transport.send(more).delivered and transport.inserted == 7
    finally:
        transport.close()
    assert pg_rows(url, "SELECT COUNT(*) AS n, COUNT(DISTINCT span_id) AS ids FROM generations") == [{"n": 7, "ids": 7}]
    assert pg_rows(url, "SELECT kind, user_id FROM security_events") == [{"kind": "injection", "user_id": "mallory"}]


def test_a_client_controlled_string_postgresql_cannot_store_costs_no_row(postgres):  # noqa: F811
    """NUL characters and lone surrogates (both reachable from JSON bodies) are replaced, not refused."""
    url = postgres.new_database("strings")
    transport = PostgresStoreTransport(url, timeout=10)
    try:
        spans = [genai_span(request_model="m\x00odel", user="u\ud800"), genai_span(request_model="ok", user="v")]
        assert transport.send(StoreRows().encode(spans)).delivered
    finally:
        transport.close()
    assert [(r["request_model"], r["user_id"]) for r in pg_rows(url, "SELECT * FROM generations ORDER BY id")] == [
        ("m\ufffdodel", "u\ufffd"), ("ok", "v")]


def test_a_row_the_database_refuses_costs_the_batch_nothing_else(postgres, caplog):  # noqa: F811
    """A value the database cannot take is not retried forever (it would hold the spool's head): the
    batch's other rows go in, the refused one is logged. An id longer than an index entry may be is
    cut to ID_MAX_CHARS on both engines, so it is stored rather than refused."""
    import secrets

    from or_middleware.store.rows import ID_MAX_CHARS

    url = postgres.new_database("refused")
    transport = PostgresStoreTransport(url, timeout=10)
    try:
        long_id = secrets.token_hex(5000)  # 10 kB that do not compress: no btree entry takes them
        assert transport.send(StoreRows().encode([genai_span(request_model=long_id, user=long_id)])).delivered
        postgres.execute(url, "ALTER TABLE generations ADD CONSTRAINT no_mallory CHECK (user_id <> 'mallory')")
        spans = [genai_span(request_model="m", user=name) for name in ("alice", "mallory", "bob")]
        result = transport.send(StoreRows().encode(spans))
        assert result.delivered and transport.inserted == 3 and transport.refused == 1
        assert transport.send(StoreRows().encode(spans)).delivered and transport.inserted == 3  # again: no double
    finally:
        transport.close()
    assert [(r["request_model"], r["user_id"]) for r in pg_rows(url, "SELECT * FROM generations ORDER BY id")] == [
        (long_id[:ID_MAX_CHARS], long_id[:ID_MAX_CHARS]), ("m", "alice"), ("m", "bob")]
    [line] = [r.getMessage() for r in caplog.records if "refused 1 row(s)" in r.getMessage()]
    assert "no_mallory" in line


def test_a_batch_holds_rows_and_nothing_else():
    span = genai_span(request_model="m", user="alice")
    body = StoreRows().encode([span])
    data = json.loads(body)
    assert set(data) == {"format", "generations", "security_events"}
    batch = decode_batch(body)
    assert batch.generations.columns == GENERATION_COLUMNS and len(batch.generations.rows) == 1
    no_keys = json.dumps({**data, "generations": {"columns": ["x"], "rows": []}}).encode()
    for bad in (b"", b"{", b"[]", b'{"format": 2}', no_keys):
        with pytest.raises(ValueError):
            decode_batch(bad)
    # a column this version does not know (a newer library spooled it) is left out, never put in SQL
    data["generations"]["columns"].append("x; DROP TABLE generations")
    data["generations"]["rows"][0].append("?")
    assert decode_batch(json.dumps(data).encode()).generations.columns == GENERATION_COLUMNS


# -- configuration ------------------------------------------------------------------------------


def local_settings(monkeypatch, **variables: str) -> LocalDestination:
    monkeypatch.setenv("OR_MIDDLEWARE_DESTINATIONS", "local")
    for name, value in variables.items():
        monkeypatch.setenv(f"OR_MIDDLEWARE_LOCAL__{name}", value)
    [destination] = Settings().destination_settings()
    assert isinstance(destination, LocalDestination)
    return destination


def test_url_takes_a_sqlite_path_or_a_postgresql_url_and_path_is_its_alias(monkeypatch, tmp_path):
    assert local_settings(monkeypatch).url == "./or_traces.db"
    assert local_settings(monkeypatch, PATH=str(tmp_path / "a.db")).url == str(tmp_path / "a.db")
    assert local_settings(monkeypatch, URL=str(tmp_path / "a.db")).path == str(tmp_path / "a.db")  # same value: fine
    monkeypatch.delenv("OR_MIDDLEWARE_LOCAL__PATH")
    assert local_settings(monkeypatch, URL="sqlite:////srv/x.db").url == "/srv/x.db"
    assert local_settings(monkeypatch, PATH="/srv/x.db").url == "/srv/x.db"  # the same store, said two ways
    monkeypatch.delenv("OR_MIDDLEWARE_LOCAL__PATH")
    pg = local_settings(monkeypatch, URL="postgresql://app@db.internal/llm")
    assert pg.is_postgres and pg.url == "postgresql://app@db.internal/llm"


@pytest.mark.parametrize(("variables", "named", "hint"), [
    ({"URL": "mysql://app:pw-CANARY@db/llm"}, ["OR_MIDDLEWARE_LOCAL__URL"], "unsupported scheme 'mysql'"),
    ({"URL": "postgresql+psycopg://app:pw-CANARY@db/llm"}, ["OR_MIDDLEWARE_LOCAL__URL"], "drop the driver name"),
    ({"URL": "postgresql://app:pw-CANARY@db:port/llm"}, ["OR_MIDDLEWARE_LOCAL__URL"], "port must be a number"),
    ({"URL": "postgresql://app:pw-CANARY@db/llm?sslmode=sometimes"}, ["OR_MIDDLEWARE_LOCAL__URL"], "sslmode must"),
    ({"URL": "postgresql://app:pw-CANARY@db/llm", "PATH": "./or_traces.db"},
     ["OR_MIDDLEWARE_LOCAL__URL", "OR_MIDDLEWARE_LOCAL__PATH"], "different stores"),
])
def test_a_store_that_cannot_be_used_stops_start_up_with_one_line(monkeypatch, variables, named, hint):
    with pytest.raises(ConfigError) as raised:
        local_settings(monkeypatch, **variables)
    message = str(raised.value)
    assert "\n" not in message and hint in message and all(name in message for name in named)
    assert "pw-CANARY" not in message


def test_a_misspelt_store_variable_is_named(monkeypatch):
    monkeypatch.setenv("OR_MIDDLEWARE_LOCAL__URI", "postgresql://db/llm")
    with pytest.raises(ConfigError, match="LOCAL__URI names no setting; did you mean OR_MIDDLEWARE_LOCAL__URL"):
        Settings()


# -- or-middleware check ------------------------------------------------------------------------

PASSWORD = "pw-CANARY-0c7d"


def check(url: str, *options: str, **variables: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OR_MIDDLEWARE_DESTINATIONS": "local", "OR_MIDDLEWARE_LOCAL__URL": url,
           "OR_MIDDLEWARE_LOCAL__TIMEOUT": "3", **variables}
    return subprocess.run([sys.executable, "-m", "or_middleware", "check", *options], capture_output=True, text=True,
                          timeout=120, env=env)


def test_check_says_whether_the_writer_could_write_and_never_shows_the_password(postgres, tmp_path):  # noqa: F811
    admin = postgres.new_database("checked")
    writer = postgres.writer_role(admin, "writer", PASSWORD)
    fresh = check(writer)
    assert fresh.returncode == 0 and "OK" in fresh.stdout and "the first writer creates schema" in fresh.stdout
    transport = PostgresStoreTransport(writer, timeout=10)
    assert transport.send(StoreRows().encode([genai_span(request_model="m")])).delivered  # the writer creates it
    transport.close()
    written = check(writer, "--span")  # --span writes no test row into the store
    assert written.returncode == 0 and "may write" in written.stdout
    ui = postgres.role(admin, "ui", PASSWORD, grants="SELECT")
    refused = check(ui)
    assert refused.returncode == 1 and "FAIL" in refused.stdout and "may not write the store" in refused.stdout
    missing = check(postgres.url("no_such_db", "postgres", PASSWORD))
    assert missing.returncode == 1 and 'database "no_such_db" does not exist' in missing.stdout
    no_server = check(f"postgresql://app:{PASSWORD}@/llm?host={tmp_path}")
    assert no_server.returncode == 1 and "connect:" in no_server.stdout and str(tmp_path) in no_server.stdout
    dry = check(writer, "--dry-run", OR_MIDDLEWARE_SPOOL_DIR=str(tmp_path / "spool"))
    assert dry.returncode == 0 and "postgresql ->" in dry.stdout and f"spool={tmp_path / 'spool'}" in dry.stdout
    for result in (fresh, written, refused, missing, no_server, dry):
        assert PASSWORD not in result.stdout + result.stderr
    assert pg_rows(admin, "SELECT COUNT(*) AS n FROM generations") == [{"n": 1}]


# -- report, tail and prune over what the writer wrote ------------------------------------------


def test_report_tail_and_prune_read_what_the_writer_wrote_as_on_sqlite(postgres, tmp_path):  # noqa: F811
    from tests.test_report import hand_made_spans

    spans = hand_made_spans()
    sqlite_db = sqlite_store(tmp_path / "traces.db", spans)
    admin = postgres.new_database("fleet_report")
    writer = postgres.writer_role(admin, "writer", PASSWORD)
    transport = PostgresStoreTransport(writer, timeout=10)
    for part in (spans[:5], spans[5:]):  # two batches, and one sent twice
        assert transport.send(StoreRows().encode(part)).delivered
    assert transport.send(StoreRows().encode(spans[5:])).delivered
    ui = postgres.role(admin, "ui", PASSWORD, grants="SELECT")
    for argv in (["--by", "model"], ["--by", "user"], ["--security"]):
        on_sqlite = cli("report", "--db", sqlite_db, "--since", "all", "--format", "json", *argv)
        on_postgres = cli("report", "--db", ui, "--since", "all", "--format", "json", *argv)
        assert on_sqlite.returncode == on_postgres.returncode == 0, on_postgres.stderr
        a, b = json.loads(on_sqlite.stdout), json.loads(on_postgres.stdout)
        a.pop("db"), b.pop("db")
        assert a == b  # the same figures: float sums are settled to 10 digits, whatever order an engine adds in
        assert PASSWORD not in on_postgres.stdout + on_postgres.stderr

    tail = subprocess.Popen([sys.executable, "-m", "or_middleware", "tail", "--db", ui, "-n", "1", "--interval", "0.1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = tail.stdout.readline()  # type: ignore[union-attr]
        assert transport.send(StoreRows().encode([genai_span(request_model="m-new", user="erin")])).delivered
        new = tail.stdout.readline()  # type: ignore[union-attr]
    finally:
        tail.terminate()
        rest = tail.communicate(timeout=10)[0]
    assert first.strip() and "erin" in new and "m-new" in new
    assert PASSWORD not in first + new + rest
    transport.close()

    refused = cli("prune", "--db", ui, "--older-than", "2d")  # the UI's role cannot delete (and says so)
    assert refused.returncode == 1 and "permission denied" in refused.stderr and PASSWORD not in refused.stderr
    assert "prune needs a role that may DELETE" in refused.stderr
    dry = cli("prune", "--db", writer, "--older-than", "2d", "--dry-run")
    assert dry.returncode == 0 and "would delete 1 generations and 0 security events" in dry.stdout
    done = cli("prune", "--db", writer, "--older-than", "2d")  # the writer's role owns the tables
    assert done.returncode == 0 and "deleted 1 generations" in done.stdout and PASSWORD not in done.stdout


def test_tail_shows_a_row_that_commits_after_a_newer_one(postgres):  # noqa: F811
    """Two writers: the row with the smaller id becomes visible last; tail prints it all the same, once."""
    import io
    import threading

    from or_middleware.report.tail import follow
    from or_middleware.store.postgres import migrate
    from or_middleware.store.rows import generation_row
    from or_middleware.store.sql import for_engine
    from or_middleware.store.sqlite_writer import INSERT_GENERATION

    url = postgres.new_database("tail")
    insert = for_engine(INSERT_GENERATION, "postgresql")
    with psycopg.connect(url) as setup:
        migrate(setup, url)
        setup.execute(insert, generation_row(genai_span(request_model="old", user="start")))
    out, stop = io.StringIO(), threading.Event()
    follower = threading.Thread(target=follow, args=(url,), kwargs={"lines": 1, "interval": 0.05, "out": out,
                                                                     "stop": stop.is_set}, daemon=True)
    follower.start()
    wait = time.monotonic() + 30
    while "start" not in out.getvalue() and time.monotonic() < wait:  # following from here on
        time.sleep(0.05)
    slow = psycopg.connect(url)
    try:
        slow.execute(insert, generation_row(genai_span(request_model="slow", user="first-id")))  # not committed
        with psycopg.connect(url) as fast:
            fast.execute(insert, generation_row(genai_span(request_model="fast", user="second-id")))
        while "second-id" not in out.getvalue() and time.monotonic() < wait:
            time.sleep(0.05)
        assert "second-id" in out.getvalue() and "first-id" not in out.getvalue()
        slow.commit()
        while "first-id" not in out.getvalue() and time.monotonic() < wait:
            time.sleep(0.05)
    finally:
        slow.close()
        time.sleep(0.3)  # a few more polls: nothing may be printed twice
        stop.set()
        follower.join(10)
    lines = out.getvalue().splitlines()
    assert [line.split()[2] for line in lines] == ["start", "second-id", "first-id"], lines


# -- the roles of docs/store-and-report.md ------------------------------------------------------


def documented_role_sql() -> list[str]:
    """The SQL block of the fleet guide, statement by statement (``\\c db`` kept as a marker)."""
    from tests.support.real_servers import REPO_ROOT
    from tests.test_readme import blocks

    [sql] = blocks("sql", (REPO_ROOT / "docs" / "store-and-report.md").read_text())
    lines = [line.split("--")[0].strip() for line in sql.splitlines()]
    return [line.rstrip(";") for line in lines if line]


def test_the_documented_roles_write_and_read_and_the_readers_cannot_write(upstream, postgres, tmp_path):  # noqa: F811
    from or_middleware.demo.serving import serve_asgi
    from or_middleware.ui.app import standalone_app

    statements = documented_role_sql()
    split = next(i for i, s in enumerate(statements) if s.startswith("\\c "))
    database = statements[split].split()[1]
    postgres.execute(postgres.url("postgres"), *statements[:split])
    postgres.execute(postgres.url(database), *statements[split + 1:])
    writer, reader = postgres.url(database, "or_writer"), postgres.url(database, "or_reader")

    destination = LocalDestination(name="local", url=writer, schedule_delay_ms=50, spool_dir=str(tmp_path / "s"))
    with serve_traced(upstream, destination) as app, httpx.Client(base_url=app, timeout=30) as client:
        for i in range(3):
            client.post("/ask", json=chat_body(f"q{i}"), headers=ALICE).raise_for_status()
        assert or_middleware.force_flush()
    assert or_middleware.stats()["local"]["exported"] == 3
    report = cli("report", "--db", reader, "--since", "all", "--format", "json")
    assert report.returncode == 0 and json.loads(report.stdout)["overall"]["requests"] == 3, report.stderr
    with serve_asgi(standalone_app(reader, token=None, host="127.0.0.1")) as ui:
        for page in ("/", "/models", "/generations", "/users"):
            answer = httpx.get(ui + page, timeout=30)
            assert answer.status_code == 200 and "alice" in httpx.get(ui + "/users", timeout=30).text, page
    with psycopg.connect(reader, autocommit=True) as connection:  # refused by the database, not by us
        for statement in ("INSERT INTO generations (time_unix_nano, trace_id, span_id, duration_s, status) "
                          "VALUES (1, 't', 's', 1, 'ok')", "DELETE FROM generations", "DROP TABLE generations"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                connection.execute(statement)  # type: ignore[arg-type]
    assert cli("prune", "--db", reader, "--older-than", "1d", "--dry-run").returncode == 0  # counting is reading
    assert cli("prune", "--db", reader, "--older-than", "0s").returncode == 1
    assert cli("prune", "--db", writer, "--older-than", "0s").returncode == 0  # the owner prunes
    assert pg_rows(writer, "SELECT COUNT(*) AS n FROM generations") == [{"n": 0}]


def test_db_takes_what_the_variable_takes(tmp_path):
    db = sqlite_store(tmp_path / "traces.db", [genai_span(request_model="m", user="alice")])
    same = cli("report", "--db", f"sqlite:///{db}", "--since", "all", "--format", "json")
    assert same.returncode == 0 and json.loads(same.stdout)["overall"]["requests"] == 1, same.stderr
    wrong = cli("report", "--db", f"mysql://app:{PASSWORD}@db/llm")
    assert wrong.returncode == 2 and "unsupported scheme 'mysql'" in wrong.stderr and PASSWORD not in wrong.stderr
