"""``or-middleware tail``: new generations as they are written, one line each (SQLite or PostgreSQL, read-only)."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

from or_middleware.report.periods import local_time
from or_middleware.store import NotAStoreError, StoreError, StoreReader, display_url, is_postgres_url, open_store_reader
from or_middleware.terminal import printable

_PAGE = 1000
HOLE_WAIT_S = 30.0  # longer than any writer's transaction (one batch, bounded by its TIMEOUT)
MAX_HOLES = 10_000
LINE_FIELDS = ("id", "time_unix_nano", "user_id", "model", "input_tokens", "output_tokens", "cost_usd",
               "duration_s", "status", "error_type")


def format_line(row: Mapping[str, Any] | Sequence[Any], width: int = 80) -> str:
    """time, user, model, tokens, cost, latency, status. Columns are padded, never cut: a wider
    terminal (``width``) gives long model names room to line up; a longer value shifts the line.

    ``row``: a generations row as a dict, or a tuple in the order of :data:`LINE_FIELDS`."""
    if not isinstance(row, Mapping):
        row = dict(zip(LINE_FIELDS, row, strict=True))
    tokens_in, tokens_out = row["input_tokens"], row["output_tokens"]
    tokens = f"{'-' if tokens_in is None else tokens_in}/{'-' if tokens_out is None else tokens_out} tok"
    cost = row["cost_usd"]
    cost_text = "-" if cost is None else f"${cost:.6f}"
    status, error_type = row["status"], row["error_type"]
    outcome = f"error {error_type}" if status == "error" and error_type else str(status)
    model = row.get("model") or row.get("response_model") or row.get("request_model") or "-"
    user = row["user_id"] or "-"
    model_width = 28 + max(0, min(width - 80, 32))
    return printable(f"{local_time(int(row['time_unix_nano']))}  {user!s:<16} {model!s:<{model_width}} {tokens:>14} "
                     f"{cost_text:>11} {row['duration_s']:>7.3f}s  {outcome}")  # user and model come from clients


class _Seen:
    """Which generations ``tail`` has printed, for a store written by several processes at once.

    PostgreSQL gives ids when a row is inserted, but a transaction commits when it ends: a row with a
    smaller id may become visible after a larger one was printed. Ids skipped over are kept as holes
    for :data:`HOLE_WAIT_S` (an aborted insert or a re-sent batch leaves holes that never fill),
    and the next polls read again from the oldest hole, printing only what is new."""

    def __init__(self, last: int) -> None:
        self.last = last
        self._holes: dict[int, float] = {}  # id -> when it was skipped over

    def after(self) -> int:
        """Read rows with an id above this."""
        return min(self._holes) - 1 if self._holes else self.last

    def new(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        now = time.monotonic()
        fresh = []
        for row in rows:
            row_id = int(row["id"])
            if self._holes.pop(row_id, None) is not None:
                fresh.append(row)
            elif row_id > self.last:
                for hole in range(max(self.last + 1, row_id - MAX_HOLES), row_id):
                    self._holes[hole] = now
                self.last = row_id
                fresh.append(row)
        for hole, since in list(self._holes.items()):
            if now - since > HOLE_WAIT_S:
                del self._holes[hole]
        while len(self._holes) > MAX_HOLES:
            del self._holes[min(self._holes)]
        return fresh


def _is_waitable(exc: Exception) -> bool:
    """A store that is not there yet: no file, or a file an app has just created and not yet set up."""
    return isinstance(exc, FileNotFoundError) or (isinstance(exc, NotAStoreError) and "empty" in str(exc))


def _open_when_ready(db: str, interval: float, stop: Callable[[], bool], err: TextIO) -> StoreReader | None:
    said = False
    while True:
        try:
            return open_store_reader(db)
        except (FileNotFoundError, NotAStoreError) as exc:
            if is_postgres_url(db) or not _is_waitable(exc):
                raise
        if not said:
            print(f"waiting for {display_url(db)} to be created...", file=err, flush=True)
            said = True
        if stop():
            return None
        time.sleep(interval)


def follow(
    db: str,
    *,
    lines: int = 10,
    interval: float = 1.0,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """Print the last ``lines`` generations, then each new one, until ``stop()`` (or Ctrl-C)."""
    reader = _open_when_ready(db, interval, stop, err)
    if reader is None:
        return
    width = shutil.get_terminal_size((80, 24)).columns
    try:
        recent = reader.generations(limit=max(1, lines), sort="id", descending=True).rows if lines > 0 else []
        seen = _Seen(reader.latest_generation_id())
        for row in sorted(recent, key=lambda r: r["id"]):
            print(format_line(row, width), file=out)
        out.flush()
        while not stop():
            after = seen.after()
            try:
                while True:  # page by page up to the newest (rows already printed are read again, not shown)
                    rows = reader.generations_after(after, limit=_PAGE)
                    for row in seen.new(rows):
                        print(format_line(row, width), file=out)
                    out.flush()
                    if len(rows) < _PAGE:
                        break
                    after = rows[-1]["id"]
            except StoreError as exc:  # a writer holds the file longer than the busy timeout; the server restarts
                print(f"(store busy: {exc})", file=err, flush=True)
            time.sleep(interval)
    finally:
        reader.close()
