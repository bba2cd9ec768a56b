"""`or-middleware report`, `tail` and `prune`: figures checked against values computed by hand."""

from __future__ import annotations

import csv
import io
import json
import queue
import subprocess
import sys
import threading
import time

import httpx
import pytest
from opentelemetry.sdk.trace import Event

import or_middleware
from or_middleware import LLMTracingMiddleware
from or_middleware.cli import main
from or_middleware.config import LocalDestination
from or_middleware.demo.serving import serve_asgi
from or_middleware.export.store import LocalStoreExporter
from tests.apps import chat_body, fastapi_app
from tests.conftest import make_settings
from tests.support.generations import genai_span, rows

NOW = time.time()
DAY = 86_400.0


def _security_event(kind: str, **evidence) -> Event:
    attributes = {f"or_middleware.security.{k}": v for k, v in {"kind": kind, **evidence}.items()}
    return Event(f"or_middleware.security.{kind}", attributes, int((NOW - 5) * 1e9))


def hand_made_store(path: str) -> None:
    """13 calls of the last hour (and one of 3 days ago) whose figures are worked out in the tests."""
    exporter = LocalStoreExporter(path)
    assert exporter.export(hand_made_spans()).name == "SUCCESS"
    exporter.shutdown()


def hand_made_spans() -> list:
    """The spans of :func:`hand_made_store`."""
    spans = []
    for n in range(1, 11):  # model m-a: durations 1..10 s
        failed = n == 10
        spans.append(genai_span(
            start_s=NOW - 3600 + n, duration_s=float(n), request_model="m-a", response_model="m-a",
            user="alice" if n <= 6 else "bob",
            input_tokens=None if failed else 100, output_tokens=None if failed else 10,
            cache_read_tokens=20 if n <= 5 else None, reasoning_tokens=3 if n in (8, 9) else None,
            cost=None if failed else 0.001, error_type="http_500" if failed else None,
            status_code=500 if failed else 200, stream=n <= 4, time_to_first_chunk=n / 10 if n <= 4 else None,
            trace_metadata={"team": "search"} if n <= 2 else {},
            events=[_security_event("burst", requests=31, window_s=10.0)] if n == 9 else [],
        ))
    for n, duration in enumerate((0.5, 0.7, 3.0)):  # model m-b
        spans.append(genai_span(
            start_s=NOW - 1800 + n, duration_s=duration, request_model="m-b", response_model="m-b", user="carol",
            input_tokens=1000, output_tokens=200, cost=0.01, trace_metadata={"team": "ads"},
            events=[_security_event("prompt_injection", phrase="ignore_instructions")] if n == 0 else [],
        ))
    spans.append(genai_span(start_s=NOW - 3 * DAY, duration_s=100.0, request_model="m-old", user="dave",
                            input_tokens=1, output_tokens=1, cost=5.0))
    return spans


@pytest.fixture
def db(tmp_path) -> str:
    path = str(tmp_path / "traces.db")
    hand_made_store(path)
    return path


def run_json(capsys, *argv: str) -> dict:
    assert main([*argv, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_figures_by_model_match_hand_computed_values(db, capsys):
    report = run_json(capsys, "report", "--db", db, "--since", "24h")
    overall = report["overall"]
    assert overall["requests"] == 13 and overall["errors"] == 1
    assert overall["error_rate"] == pytest.approx(1 / 13)
    assert overall["input_tokens"] == 9 * 100 + 3 * 1000 and overall["output_tokens"] == 9 * 10 + 3 * 200
    assert overall["cached_tokens"] == 5 * 20 and overall["reasoning_tokens"] == 2 * 3
    assert overall["cost_usd"] == pytest.approx(9 * 0.001 + 3 * 0.01)
    assert overall["mean_cost_usd"] == pytest.approx(0.039 / 12)  # over the 12 calls with a cost
    # durations sorted: .5 .7 1 2 3 3 4 5 6 7 8 9 10; inclusive percentiles at rank (n-1)p
    assert overall["latency_p50_s"] == pytest.approx(4.0)  # rank 6
    assert overall["latency_p95_s"] == pytest.approx(9.4)  # rank 11.4: 9 + .4 * (10 - 9)
    assert overall["latency_p99_s"] == pytest.approx(9.88)
    assert overall["ttfc_p50_s"] == pytest.approx(0.25)  # .1 .2 .3 .4
    assert overall["ttfc_p95_s"] == pytest.approx(0.385)  # rank 2.85: .3 + .85 * .1

    m_b, m_a = report["groups"]  # most expensive first
    assert m_b["key"] == "m-b" and m_b["requests"] == 3 and m_b["errors"] == 0
    assert m_b["cost_usd"] == pytest.approx(0.03) and m_b["mean_cost_usd"] == pytest.approx(0.01)
    assert m_b["latency_p50_s"] == pytest.approx(0.7)
    assert m_b["latency_p95_s"] == pytest.approx(0.7 + 0.9 * 2.3)  # rank 1.9
    assert m_b["latency_p99_s"] == pytest.approx(0.7 + 0.98 * 2.3)
    assert m_b["ttfc_p50_s"] is None
    assert m_a["key"] == "m-a" and m_a["requests"] == 10 and m_a["errors"] == 1 and m_a["error_rate"] == 0.1
    assert (m_a["input_tokens"], m_a["output_tokens"]) == (900, 90)
    assert (m_a["cached_tokens"], m_a["reasoning_tokens"]) == (100, 6)
    assert m_a["latency_p50_s"] == pytest.approx(5.5)
    assert m_a["latency_p95_s"] == pytest.approx(9.55)
    assert m_a["latency_p99_s"] == pytest.approx(9.91)

    spenders = [(s["key"], s["requests"], round(s["cost_usd"], 9)) for s in report["top_spenders"]]
    assert spenders == [("carol", 3, 0.03), ("alice", 6, 0.006), ("bob", 4, 0.003)]


def test_since_and_grouping_by_user_route_and_metadata(db, capsys):
    everything = run_json(capsys, "report", "--db", db, "--since", "all")
    assert everything["overall"]["requests"] == 14 and everything["groups"][0]["key"] == "m-old"
    assert run_json(capsys, "report", "--db", db, "--since", "7d")["overall"]["requests"] == 14
    two_days_ago = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(NOW - 2 * DAY))
    assert run_json(capsys, "report", "--db", db, "--since", two_days_ago)["overall"]["requests"] == 13

    by_user = {g["key"]: g for g in run_json(capsys, "report", "--db", db, "--by", "user")["groups"]}
    assert {k: v["requests"] for k, v in by_user.items()} == {"alice": 6, "bob": 4, "carol": 3}
    assert by_user["bob"]["errors"] == 1 and by_user["bob"]["latency_p50_s"] == pytest.approx(8.5)

    by_team = run_json(capsys, "report", "--db", db, "--by", "metadata.team")["groups"]
    by_team = {g["key"]: g["requests"] for g in by_team}
    assert by_team == {"search": 2, "ads": 3, "(none)": 8}


def test_the_table_fits_an_80_column_terminal(db, capsys, tmp_path):
    long_name = "some-vendor/an-extraordinarily-long-model-name-that-goes-on-and-on-2025-preview"
    exporter = LocalStoreExporter(db)
    exporter.export([genai_span(start_s=NOW - 60, request_model=long_name, response_model=long_name,
                                user="u" * 50, input_tokens=123_456_789, output_tokens=98_765_432, cost=12345.678901)])
    exporter.shutdown()
    for by in ("model", "user"):
        assert main(["report", "--db", db, "--by", by]) == 0
        out = capsys.readouterr().out
        assert max(len(line) for line in out.splitlines()) <= 80
        assert "m-a" in out or "alice" in out
    assert "123.5M" in out and "12345.68" in out  # too wide for its column: the compact form
    assert "in 123,460,689" in out  # the summary lines have room for every digit
    assert main(["report", "--db", db, "--security"]) == 0
    assert max(len(line) for line in capsys.readouterr().out.splitlines()) <= 80


def test_csv_has_one_row_per_group_after_the_total(db, capsys):
    assert main(["report", "--db", db, "--format", "csv"]) == 0
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [row["model"] for row in table] == ["(all)", "m-b", "m-a"]
    assert table[2]["requests"] == "10" and float(table[2]["latency_p50_s"]) == pytest.approx(5.5)
    assert table[1]["ttfc_p50_s"] == ""


def test_security_report_lists_each_signal(db, capsys):
    report = run_json(capsys, "report", "--db", db, "--security")
    assert report["by_kind"] == [{"kind": "burst", "count": 1, "users": 1},
                                 {"kind": "prompt_injection", "count": 1, "users": 1}]
    assert {e["kind"]: e["evidence"] for e in report["recent"]} == {
        "burst": {"requests": 31, "window_s": 10.0}, "prompt_injection": {"phrase": "ignore_instructions"}}
    assert main(["report", "--db", db, "--security"]) == 0
    table = capsys.readouterr().out
    assert "prompt_injection" in table and "phrase=ignore_instructions" in table and "carol" in table


def test_a_missing_store_or_a_bad_option_is_one_clear_line(tmp_path, capsys):
    assert main(["report", "--db", str(tmp_path / "nope.db")]) == 1
    assert "no store at" in capsys.readouterr().err
    assert not (tmp_path / "nope.db").exists()  # report never creates a store
    hand_made_store(str(tmp_path / "t.db"))
    assert main(["report", "--db", str(tmp_path / "t.db"), "--since", "yesterday"]) == 1
    assert "expected" in capsys.readouterr().err
    assert main(["report", "--db", str(tmp_path / "t.db"), "--by", "colour"]) == 1
    assert "metadata.KEY" in capsys.readouterr().err


def test_report_of_a_real_app(upstream, tmp_path):
    db = tmp_path / "traces.db"
    app = fastapi_app(upstream.openrouter)
    destination = LocalDestination(name="local", path=str(db), schedule_delay_ms=50)
    app.add_middleware(LLMTracingMiddleware, settings=make_settings(upstream, destination))
    with serve_asgi(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(2):
            client.post("/ask", json=chat_body("hello there"), headers={"x-user-id": "alice"}).raise_for_status()
        client.post("/ask", json=chat_body("one two three four"), headers={"x-user-id": "bob"}).raise_for_status()
        client.post("/ask", json=chat_body("x", model="fake/error_500"), headers={"x-user-id": "bob"})
        assert or_middleware.force_flush()
    # the console script, as a user runs it
    out = subprocess.run([sys.executable, "-m", "or_middleware", "report", "--db", str(db), "--by", "user",
                          "--format", "json"], capture_output=True, text=True, check=True).stdout
    groups = {g["key"]: g for g in json.loads(out)["groups"]}
    # fake: tokens are words, the reply "Echo: <prompt>", $1e-6 per input and $2e-6 per output token
    assert (groups["alice"]["input_tokens"], groups["alice"]["output_tokens"]) == (2 * 2, 2 * 3)
    assert groups["alice"]["cost_usd"] == pytest.approx(2 * (2e-6 + 3 * 2e-6))
    assert (groups["bob"]["requests"], groups["bob"]["errors"]) == (2, 1)
    assert (groups["bob"]["input_tokens"], groups["bob"]["output_tokens"]) == (4, 5)
    assert groups["bob"]["cost_usd"] == pytest.approx(4e-6 + 5 * 2e-6)
    durations = [r["duration_s"] for r in rows(str(db), "SELECT duration_s FROM generations WHERE user_id='alice'")]
    assert groups["alice"]["latency_p50_s"] == pytest.approx(sum(durations) / 2)


def _lines_of(process: subprocess.Popen) -> queue.Queue:
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in process.stdout:  # type: ignore[union-attr]
            lines.put(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    return lines


def test_tail_prints_the_last_generations_then_follows_new_ones(db):
    process = subprocess.Popen([sys.executable, "-m", "or_middleware", "tail", "--db", db, "-n", "2",
                                "--interval", "0.05"], stdout=subprocess.PIPE, text=True)
    try:
        lines = _lines_of(process)
        first = [lines.get(timeout=20) for _ in range(2)]
        assert "carol" in first[0] and "m-b" in first[0] and "$0.010000" in first[0]
        assert "dave" in first[1] and "m-old" in first[1]  # newest row last (it was written last)
        exporter = LocalStoreExporter(db)
        exporter.export([genai_span(start_s=time.time(), duration_s=0.25, request_model="m-new", user="erin",
                                    input_tokens=12, output_tokens=34, cost=0.000082)])
        exporter.export([genai_span(start_s=time.time(), request_model="m-new", user="frank",
                                    error_type="http_429", status_code=429)])
        exporter.shutdown()
        new = [lines.get(timeout=20) for _ in range(2)]
        assert "erin" in new[0] and "m-new" in new[0] and "12/34 tok" in new[0] and "$0.000082" in new[0]
        assert "0.250s" in new[0] and new[0].endswith("ok")
        assert "frank" in new[1] and new[1].endswith("error http_429")
        with pytest.raises(queue.Empty):
            lines.get(timeout=0.3)  # nothing printed twice
    finally:
        process.terminate()
        process.wait(10)


def test_prune_dry_run_counts_a_schema_1_store_without_changing_it(tmp_path, capsys):
    """A version 1 store has no security_events table: the dry run (read-only, no migration) counts
    its generations and none of the signals it cannot have, and leaves the file as it was."""
    import sqlite3

    from or_middleware.store.schema import SQLITE_MIGRATIONS

    db = tmp_path / "v1.db"
    connection = sqlite3.connect(db, isolation_level=None)
    for statement in SQLITE_MIGRATIONS[0]:
        connection.execute(statement)
    connection.execute("PRAGMA user_version = 1")
    for start in (NOW - 100 * DAY, NOW - 99 * DAY, NOW):
        connection.execute("INSERT INTO generations (time_unix_nano, trace_id, span_id, duration_s, status) "
                           "VALUES (?, 't', 's', 0.5, 'ok')", (int(start * 1e9),))
    connection.close()
    before = db.read_bytes()
    assert main(["prune", "--db", str(db), "--older-than", "90d", "--dry-run"]) == 0
    assert "would delete 2 generations and 0 security events" in capsys.readouterr().out
    assert db.read_bytes() == before
    assert main(["prune", "--db", str(db), "--older-than", "90d"]) == 0  # migrates, then deletes
    assert "deleted 2 generations and 0 security events" in capsys.readouterr().out


def test_prune_deletes_only_what_is_older_and_says_how_much(db, capsys):
    exporter = LocalStoreExporter(db)
    exporter.export([genai_span(start_s=NOW - 100 * DAY, request_model="ancient", user="zoe",
                                events=[Event("or_middleware.security.cost_spike", {}, int((NOW - 100 * DAY) * 1e9))])])
    exporter.shutdown()
    assert main(["prune", "--db", db, "--older-than", "90d", "--dry-run"]) == 0
    assert "would delete 1 generations and 1 security events" in capsys.readouterr().out
    assert len(rows(db)) == 15
    assert main(["prune", "--db", db, "--older-than", "90d"]) == 0
    assert "deleted 1 generations and 1 security events" in capsys.readouterr().out
    assert "ancient" not in {r["request_model"] for r in rows(db)} and len(rows(db)) == 14
    assert main(["prune", "--db", db, "--older-than", "2d", "--vacuum"]) == 0
    assert {r["request_model"] for r in rows(db)} == {"m-a", "m-b"}
    assert len(rows(db, "SELECT * FROM security_events")) == 2  # this hour's stay
    assert main(["prune", "--db", db, "--older-than", "soon"]) == 1
