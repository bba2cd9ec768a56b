"""``or-middleware demo``."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _run(args: argparse.Namespace) -> int:
    try:
        from or_middleware.demo.run import run_demo
    except ImportError as exc:
        print(f"or-middleware demo needs the demo extra: pip install 'or-middleware[demo]' ({exc})", file=sys.stderr)
        return 2
    return run_demo(privacy_mode=not args.show_content, db=None if args.no_store else args.db)


def _default_db() -> str:
    from or_middleware.report.command import _default_db as report_default

    return report_default()


def register(commands: Any) -> None:
    demo = commands.add_parser(
        "demo", help="run an example app against a local fake OpenRouter and print the span tree"
    )
    demo.add_argument("--show-content", action="store_true", help="turn privacy mode off for the demo")
    demo.add_argument("--db", default=_default_db(), metavar="PATH",
                      help="also write every call to this local store, for `report` and `ui` "
                           "(default: $OR_MIDDLEWARE_LOCAL__PATH or ./or_traces.db)")
    demo.add_argument("--no-store", action="store_true", help="print the span tree only, write no store")
    demo.set_defaults(handler=_run)
