"""``or-middleware tail``: new generations as they are written, one line each."""

from __future__ import annotations

import shutil
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from or_middleware.export.store import open_store
from or_middleware.report.periods import local_time
from or_middleware.terminal import printable

_COLUMNS = "id, time_unix_nano, user_id, COALESCE(response_model, request_model), input_tokens, output_tokens, " \
    "cost_usd, duration_s, status, error_type"
_PAGE = 1000


def format_line(row: tuple[object, ...], width: int = 80) -> str:
    """time, user, model, tokens, cost, latency, status. Columns are padded, never cut: a wider
    terminal (``width``) gives long model names room to line up; a longer value shifts the line."""
    _, at, user, model, tokens_in, tokens_out, cost, duration, status, error_type = row
    tokens = f"{'-' if tokens_in is None else tokens_in}/{'-' if tokens_out is None else tokens_out} tok"
    cost_text = "-" if cost is None else f"${cost:.6f}"
    outcome = f"error {error_type}" if status == "error" and error_type else str(status)
    model_width = 28 + max(0, min(width - 80, 32))
    return printable(f"{local_time(int(at))}  {user or '-'!s:<16} {model or '-'!s:<{model_width}} "  # type: ignore[call-overload]
            f"{tokens:>14} {cost_text:>11} {duration:>7.3f}s  {outcome}")  # user and model come from clients


def _wait_for_file(path: Path, interval: float, stop: Callable[[], bool], err: TextIO) -> bool:
    if path.exists():
        return True
    print(f"waiting for {path} to be created...", file=err, flush=True)
    while not path.exists():
        if stop():
            return False
        time.sleep(interval)
    return True


def follow(
    path: str,
    *,
    lines: int = 10,
    interval: float = 1.0,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """Print the last ``lines`` generations, then each new one, until ``stop()`` (or Ctrl-C)."""
    if not _wait_for_file(Path(path), interval, stop, err):
        return
    connection = open_store(path, create=False)
    width = shutil.get_terminal_size((80, 24)).columns
    try:
        recent = connection.execute(f"SELECT {_COLUMNS} FROM generations ORDER BY id DESC LIMIT ?", (lines,)).fetchall()
        for row in reversed(recent):
            print(format_line(row, width), file=out)
        out.flush()
        last = connection.execute("SELECT COALESCE(MAX(id), 0) FROM generations").fetchone()[0]
        while not stop():
            try:
                rows = connection.execute(
                    f"SELECT {_COLUMNS} FROM generations WHERE id > ? ORDER BY id LIMIT ?", (last, _PAGE)
                ).fetchall()
            except sqlite3.OperationalError as exc:  # a writer holds the file longer than the busy timeout
                print(f"(store busy: {exc})", file=err, flush=True)
                rows = []
            for row in rows:
                print(format_line(row, width), file=out)
                last = row[0]
            out.flush()
            if len(rows) < _PAGE:
                time.sleep(interval)
    finally:
        connection.close()
