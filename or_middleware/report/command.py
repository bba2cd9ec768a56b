"""``or-middleware report``, ``tail`` and ``prune``: the local store from the command line."""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from datetime import datetime
from typing import Any

from or_middleware.report import render
from or_middleware.report.figures import GROUPINGS, group_expression, security_report, usage_report
from or_middleware.report.periods import AGE_HELP, local_time, parse_age, parse_since, to_unix_nano

DEFAULT_DB = "./or_traces.db"


def _default_db() -> str:
    return os.environ.get("OR_MIDDLEWARE_LOCAL__PATH") or DEFAULT_DB


def _fail(message: str) -> int:
    print(f"or-middleware: {message}", file=sys.stderr)
    return 1


def _report(args: argparse.Namespace) -> int:
    from or_middleware.export.store import open_store

    try:
        since = to_unix_nano(parse_since(args.since, datetime.now().astimezone()))
        group_expression(args.by)
        connection = open_store(args.db, create=False)
    except (ValueError, FileNotFoundError, sqlite3.Error) as exc:
        return _fail(str(exc))
    try:
        if args.security:
            security = security_report(connection, since_unix_nano=since, recent=args.limit)
            renderer = {"table": render.security_table, "json": render.security_json, "csv": render.security_csv}
            sys.stdout.write(renderer[args.format](security, args.db))
        else:
            usage = usage_report(connection, since_unix_nano=since, by=args.by)
            renderer = {"table": render.usage_table, "json": render.usage_json, "csv": render.usage_csv}
            sys.stdout.write(renderer[args.format](usage, args.db))
    except sqlite3.Error as exc:
        return _fail(str(exc))
    finally:
        connection.close()
    return 0


def _tail(args: argparse.Namespace) -> int:
    from or_middleware.report.tail import follow

    try:
        follow(args.db, lines=args.lines, interval=args.interval)
    except KeyboardInterrupt:
        return 0
    except (FileNotFoundError, sqlite3.Error) as exc:
        return _fail(str(exc))
    return 0


def _prune(args: argparse.Namespace) -> int:
    from or_middleware.report.prune import prune

    try:
        cutoff = datetime.now().astimezone() - parse_age(args.older_than)
        pruned = prune(args.db, before_unix_nano=to_unix_nano(cutoff), dry_run=args.dry_run, vacuum=args.vacuum)
    except (ValueError, FileNotFoundError, sqlite3.Error) as exc:
        return _fail(str(exc))
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{verb} {pruned.generations:,} generations and {pruned.security_events:,} security events "
          f"that started before {local_time(to_unix_nano(cutoff))} from {args.db}")
    return 0


def _db_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default=_default_db(), metavar="PATH",
                        help="the local store (default: $OR_MIDDLEWARE_LOCAL__PATH or ./or_traces.db)")


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
