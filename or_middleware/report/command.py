"""``or-middleware report``, ``tail`` and ``prune``: the local store from the command line."""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from datetime import datetime
from typing import Any

from or_middleware.report import render
from or_middleware.report.figures import GROUPINGS, check_grouping, security_report, usage_report
from or_middleware.report.periods import AGE_HELP, local_time, parse_age, parse_since, to_unix_nano
from or_middleware.store import NotAStoreError, StoreError, display_url, open_store_reader
from or_middleware.store.sql import without_secrets

DEFAULT_DB = "./or_traces.db"
# what a read command cannot get past, each said in one line
_READ_ERRORS = (ValueError, FileNotFoundError, NotAStoreError, StoreError, sqlite3.Error)


def _default_db() -> str:
    """The store the app writes: ``OR_MIDDLEWARE_LOCAL__URL``, its alias ``..._PATH``, or ./or_traces.db."""
    return os.environ.get("OR_MIDDLEWARE_LOCAL__URL") or os.environ.get("OR_MIDDLEWARE_LOCAL__PATH") or DEFAULT_DB


def _fail(message: str, db: str = "") -> int:
    text = without_secrets(message, db) if db else message
    print("or-middleware: " + " ".join(line.strip() for line in text.splitlines() if line.strip()),
          file=sys.stderr)  # one line, also for a driver's multi-line message
    return 1


def _report(args: argparse.Namespace) -> int:
    try:
        since = to_unix_nano(parse_since(args.since, datetime.now().astimezone()))
        check_grouping(args.by)
        reader = open_store_reader(args.db)
    except _READ_ERRORS as exc:
        return _fail(str(exc), args.db)
    try:
        shown = display_url(args.db)
        if args.security:
            security = security_report(reader, since_unix_nano=since, recent=args.limit)
            renderer = {"table": render.security_table, "json": render.security_json, "csv": render.security_csv}
            sys.stdout.write(renderer[args.format](security, shown))
        else:
            usage = usage_report(reader, since_unix_nano=since, by=args.by)
            renderer = {"table": render.usage_table, "json": render.usage_json, "csv": render.usage_csv}
            sys.stdout.write(renderer[args.format](usage, shown))
    except _READ_ERRORS as exc:
        return _fail(str(exc), args.db)
    finally:
        reader.close()
    return 0


def _tail(args: argparse.Namespace) -> int:
    from or_middleware.report.tail import follow

    try:
        follow(args.db, lines=args.lines, interval=args.interval)
    except KeyboardInterrupt:
        return 0
    except _READ_ERRORS as exc:
        return _fail(str(exc), args.db)
    return 0


def _prune(args: argparse.Namespace) -> int:
    from or_middleware.report.prune import prune

    try:
        cutoff = datetime.now().astimezone() - parse_age(args.older_than)
        pruned = prune(args.db, before_unix_nano=to_unix_nano(cutoff), dry_run=args.dry_run, vacuum=args.vacuum)
    except _READ_ERRORS as exc:
        return _fail(str(exc), args.db)
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{verb} {pruned.generations:,} generations and {pruned.security_events:,} security events "
          f"that started before {local_time(to_unix_nano(cutoff))} from {display_url(args.db)}")
    return 0


def store_argument(value: str) -> str:
    """``--db`` as the engines take it (``sqlite:///x.db`` is ``x.db``); a scheme we do not know is refused."""
    from or_middleware.store.locations import store_location_problem

    location, problem = store_location_problem(value)
    if problem:
        from or_middleware.secrets import safe_url

        # One line, as every other store error: argparse's usage lines would only bury it.
        sys.stderr.write(f"or-middleware: --db {without_secrets(f'{safe_url(value)}: {problem}', value)}\n")
        raise SystemExit(2)
    return location


def _db_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default=_default_db(), metavar="PATH|URL", type=store_argument,
                        help="the store: a SQLite file or a postgresql:// URL "
                             "(default: $OR_MIDDLEWARE_LOCAL__URL or ./or_traces.db)")


def register(commands: Any) -> None:
    report = commands.add_parser("report", help="usage (or, with --security, security signals) from the local store")
    _db_argument(report)
    report.add_argument("--since", default="24h", help="24h, 7d, an ISO date/time, or all (default: 24h)")
    report.add_argument("--by", default="model", metavar="FIELD",
                        help=f"group by {', '.join(GROUPINGS)} or metadata.KEY (default: model)")
    report.add_argument("--format", choices=("table", "json", "csv"), default="table")
    report.add_argument("--security", action="store_true", help="security signals instead of usage")
    report.add_argument("--limit", type=int, default=20, help="recent security signals listed (default: 20)")
    report.set_defaults(handler=_report)

    tail = commands.add_parser("tail", help="follow new generations in the local store, one line each")
    _db_argument(tail)
    tail.add_argument("-n", "--lines", type=int, default=10, help="recent generations shown first (default: 10)")
    tail.add_argument("--interval", type=float, default=1.0, help="seconds between checks (default: 1)")
    tail.set_defaults(handler=_tail)

    prune = commands.add_parser("prune", help="delete generations older than a given age (retention)")
    _db_argument(prune)
    prune.add_argument("--older-than", required=True, metavar="AGE", help=AGE_HELP)
    prune.add_argument("--dry-run", action="store_true", help="count what would be deleted, delete nothing")
    prune.add_argument("--vacuum", action="store_true", help="give the freed space back to the file system")
    prune.set_defaults(handler=_prune)
