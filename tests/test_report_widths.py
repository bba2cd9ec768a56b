"""`report` and `tail` follow the terminal's width (COLUMNS) and never cut what a user copies: long
model ids, user ids and security evidence are printed whole; json and csv do not depend on it."""

from __future__ import annotations

import json
import time

import pytest
from opentelemetry.sdk.trace import Event

from or_middleware.cli import main
from or_middleware.export.store import LocalStoreExporter
from or_middleware.report.tail import format_line
from tests.support.generations import genai_span

NOW = time.time()
LONG_MODEL = "anthropic/claude-sonnet-4.5-20250929"
VERY_LONG_MODEL = "some-vendor/an-extraordinarily-long-model-name-that-goes-on-and-on-and-on-2025-preview-09"
LONG_USER = "user-0f8fad5b-d9cb-469f-a165-70867728950e"
MODELS = ["openai/gpt-4o-2024-11-20", "anthropic/claude-sonnet-4.5-20250929", "google/gemini-2.5-pro-preview-06-05",
          "meta-llama/llama-3.3-70b-instruct", "mistralai/mistral-large-2411"]


@pytest.fixture
def db(tmp_path) -> str:
    path = str(tmp_path / "traces.db")
    switching = Event("or_middleware.security.model_switching", {
        "or_middleware.security.kind": "model_switching", "or_middleware.security.distinct_models": 5,
        "or_middleware.security.models": ",".join(MODELS), "or_middleware.security.window_s": 600.0},
        int((NOW - 5) * 1e9))
    spans = [genai_span(start_s=NOW - 60 + n, request_model=model, response_model=model, user=LONG_USER,
                        input_tokens=1000, output_tokens=100, cost=0.01, events=[switching] if n == 0 else [])
             for n, model in enumerate([LONG_MODEL, VERY_LONG_MODEL, "m"])]
    exporter = LocalStoreExporter(path)
    assert exporter.export(spans).name == "SUCCESS"
    exporter.shutdown()
    return path


def report(capsys, monkeypatch, columns: int, *argv: str) -> str:
    monkeypatch.setenv("COLUMNS", str(columns))
    assert main(["report", *argv]) == 0
    return capsys.readouterr().out


def assert_fits(text: str, columns: int) -> None:
    """Every line fits, except one that is a single word longer than the terminal (kept whole)."""
    for line in text.splitlines():
        assert len(line) <= columns or " " not in line.strip(), f"{len(line)} > {columns}: {line!r}"


@pytest.mark.parametrize("columns", [60, 80, 132, 200])
def test_model_ids_are_whole_and_lines_fit_the_terminal(db, capsys, monkeypatch, columns):
    out = report(capsys, monkeypatch, columns, "--db", db)
    assert_fits(out, columns)
    assert out.count(LONG_MODEL) == 2 and out.count(VERY_LONG_MODEL) == 2  # in both tables, whole
    assert "…" not in out
    rows = [line for line in out.splitlines() if line.startswith(LONG_MODEL)]
    if columns >= 132:  # room for the id in its column: one line per row, figures beside it
        assert all("1,000" in line for line in rows[:1])
    if columns < 80:  # no room: the id alone on its line, the figures below it
        assert rows[0] == LONG_MODEL


def test_user_ids_and_the_store_path_are_whole(db, capsys, monkeypatch):
    out = report(capsys, monkeypatch, 80, "--db", db, "--by", "user")
    assert LONG_USER in out and db in out
    assert_fits(out, 80)


@pytest.mark.parametrize("columns", [60, 80, 200])
def test_security_evidence_is_whole(db, capsys, monkeypatch, columns):
    out = report(capsys, monkeypatch, columns, "--db", db, "--security")
    assert_fits(out, columns)
    assert "models=" + ",".join(MODELS) in out.replace("\n", "")  # one word, never broken
    assert LONG_USER in out


def test_json_and_csv_do_not_depend_on_the_terminal(db, capsys, monkeypatch):
    def without_since(text: str, fmt: str) -> object:  # "since 24h" moves with the clock
        return {k: v for k, v in json.loads(text).items() if k != "since_unix_nano"} if fmt == "json" else text

    for fmt in ("json", "csv"):
        for extra in ((), ("--security",)):
            narrow = report(capsys, monkeypatch, 40, "--db", db, "--format", fmt, *extra)
            wide = report(capsys, monkeypatch, 300, "--db", db, "--format", fmt, *extra)
            assert without_since(narrow, fmt) == without_since(wide, fmt)
            assert (VERY_LONG_MODEL if not extra else ",".join(MODELS)) in narrow


def test_tail_lines_keep_long_ids_and_line_up_in_a_wide_terminal():
    row = (1, int(NOW * 1e9), LONG_USER, VERY_LONG_MODEL, 10, 20, 0.5, 1.25, "ok", None)
    assert LONG_USER in format_line(row, 80) and VERY_LONG_MODEL in format_line(row, 80)
    short = (2, int(NOW * 1e9), "bob", LONG_MODEL, 10, 20, 0.5, 1.25, "ok", None)
    other = (3, int(NOW * 1e9), "bob", "openai/gpt-4o", 10, 20, 0.5, 1.25, "ok", None)
    for width in (80, 132):
        a, b = format_line(short, width), format_line(other, width)
        if width >= 80 + len(LONG_MODEL) - 28:  # room for the long id: the figures line up
            assert a.index(" tok") == b.index(" tok")
    assert format_line(short, 132).index(" tok") > format_line(short, 80).index(" tok")


def test_escape_sequences_in_ids_are_shown_not_obeyed(tmp_path, capsys, monkeypatch):
    evil = "mallory\x1b]0;pwned\x07\x1b[2J\nforged line"
    path = str(tmp_path / "evil.db")
    exporter = LocalStoreExporter(path)
    exporter.export([genai_span(start_s=NOW - 5, request_model="m\x1b[31m", user=evil, input_tokens=1,
                                output_tokens=1, cost=0.1)])
    exporter.shutdown()
    for by in ("user", "model"):
        out = report(capsys, monkeypatch, 100, "--db", path, "--by", by)
        assert "\x1b" not in out and "\x07" not in out
        assert not any(line.startswith("forged line") for line in out.splitlines())
        assert "mallory\\x1b]0;pwned\\x07\\x1b[2J\\nforged line" in out
    line = format_line((1, int(NOW * 1e9), evil, "m\x1b[31m", 1, 1, 0.1, 1.0, "ok", None))
    assert "\x1b" not in line and "\n" not in line
