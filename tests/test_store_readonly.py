"""Read commands never write, and refuse what is not ours (issue 11 item 19); a fork never waits on our
retries (item 10)."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

import or_middleware
from or_middleware import LLMTracingMiddleware
from or_middleware.config import LocalDestination
from or_middleware.demo.serving import serve_asgi
from or_middleware.store import NotAStoreError, open_store_reader, sqlite_writer
from tests.apps import chat_body, fastapi_app
from tests.conftest import make_settings
from tests.support.generations import rows
from tests.test_report import hand_made_store


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    """The console script, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "or_middleware", *argv], capture_output=True, text=True,
                          timeout=120)


def snapshot(directory: Path) -> dict[str, str]:
    """Every file of ``directory`` and a hash of its bytes."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def other_apps_file(path: Path, *, user_version: int = 0, wal: bool = False) -> None:
    """Another application's SQLite file, with a table of its own called ``generations``."""
    connection = sqlite3.connect(path)
    if wal:
        connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("CREATE TABLE generations (id INTEGER PRIMARY KEY, prompt TEXT, image BLOB)")
    connection.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    connection.execute("INSERT INTO generations (prompt) VALUES ('a cat in a hat')")
    if user_version:
        connection.execute(f"PRAGMA user_version = {user_version}")
    connection.commit()
    connection.close()


@pytest.mark.parametrize("user_version", [0, 1, 7])
def test_report_tail_and_prune_refuse_another_apps_file_and_change_nothing(tmp_path, user_version):
    db = tmp_path / "other_app.db"
    other_apps_file(db, user_version=user_version)
    before = snapshot(tmp_path)
    for argv in (["report"], ["report", "--security"], ["tail", "-n", "1"], ["prune", "--older-than", "1d"],
                 ["prune", "--older-than", "1d", "--dry-run"]):
        result = cli(*argv, "--db", str(db))
        assert result.returncode == 1, (argv, result.stdout)
        assert "is not an or_middleware store" in result.stderr and "refusing" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1  # one clear line, no traceback
    assert snapshot(tmp_path) == before  # not a byte changed, no -wal / -shm / journal left
    assert rows(str(db), "SELECT prompt FROM generations") == [{"prompt": "a cat in a hat"}]
    assert rows(str(db), "PRAGMA journal_mode") == [{"journal_mode": "delete"}]


def test_a_wal_mode_foreign_file_and_files_that_are_not_sqlite_are_refused(tmp_path):
    (tmp_path / "wal_app.db").touch()
    other_apps_file(tmp_path / "wal_app.db", wal=True)
    (tmp_path / "notes.db").write_text("not a database at all\n" * 20)
    (tmp_path / "empty.db").touch()
    before = snapshot(tmp_path)
    for name, expected in (("wal_app.db", "not an or_middleware store"), ("notes.db", "not a SQLite database"),
                           ("empty.db", "empty database")):
        result = cli("report", "--db", str(tmp_path / name))
        assert result.returncode == 1 and expected in result.stderr, (name, result.stderr)
    assert snapshot(tmp_path) == before


def test_our_table_with_other_columns_is_refused(tmp_path):
    db = tmp_path / "look_alike.db"
    connection = sqlite3.connect(db)
    connection.execute("CREATE TABLE generations (id INTEGER PRIMARY KEY, time_unix_nano INTEGER, model TEXT)")
    connection.execute("PRAGMA user_version = 2")
    connection.commit()
    connection.close()
    before = snapshot(tmp_path)
    result = cli("report", "--db", str(db))
    assert result.returncode == 1 and "its generations table lacks trace_id" in result.stderr
    with pytest.raises(NotAStoreError):
        open_store_reader(str(db))
    assert snapshot(tmp_path) == before


def test_report_reads_a_store_without_writing_it(tmp_path):
    db = tmp_path / "traces.db"
    hand_made_store(str(db))
    connection = sqlite3.connect(db)  # an older library's file: schema version 2, no newer index
    connection.execute("DROP INDEX generations_session_time")
    connection.execute("PRAGMA user_version = 2")
    connection.commit()
    connection.close()
    main_file = hashlib.sha256(db.read_bytes()).hexdigest()
    result = cli("report", "--db", str(db), "--since", "all", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["overall"]["requests"] == 14
    assert hashlib.sha256(db.read_bytes()).hexdigest() == main_file
    assert rows(str(db), "PRAGMA user_version") == [{"user_version": 2}]  # not migrated by a read
    with open_store_reader(str(db)) as reader, pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.execute("INSERT INTO generations (time_unix_nano, trace_id, span_id, duration_s, status) "
                       "VALUES (1, 't', 's', 1, 'ok')")


def test_a_fork_does_not_wait_while_another_process_holds_the_write_lock(upstream, tmp_path):
    """The app forks (a worker, a subprocess) while its store is locked by another process and our
    exporter is retrying: the fork returns at once, and the row is still written afterwards."""
    db = tmp_path / "traces.db"
    destination = LocalDestination(name="local", path=str(db), schedule_delay_ms=20, busy_timeout_ms=50,
                                   write_retry_s=60)
    app = fastapi_app(upstream.openrouter)
    app.add_middleware(LLMTracingMiddleware, settings=make_settings(upstream, destination))
    with serve_asgi(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        client.post("/ask", json=chat_body("first")).raise_for_status()
        assert or_middleware.force_flush()
        [exporter] = [e for e in list(sqlite_writer._open_exporters) if e.path == str(db)]
        holder = sqlite3.connect(db, isolation_level=None)  # another process's long write transaction
        holder.execute("BEGIN IMMEDIATE")
        try:
            client.post("/ask", json=chat_body("second")).raise_for_status()
            for _ in range(3000):  # until the exporter is in its backoff, retrying the locked file
                if exporter.retries:
                    break
                time.sleep(0.01)
            assert exporter.retries > 0
            forked = threading.Event()

            def fork() -> None:
                pid = os.fork()
                if pid == 0:
                    os._exit(0)
                forked.set()
                os.waitpid(pid, 0)

            threading.Thread(target=fork, daemon=True).start()
            # Before the fix the fork waited for the exporter's retries, i.e. for the holder below.
            assert forked.wait(20), "os.fork() waited for the store's write retries"
        finally:
            holder.execute("COMMIT")
            holder.close()
        assert or_middleware.force_flush()
    assert rows(str(db), "SELECT COUNT(*) AS n FROM generations") == [{"n": 2}]
