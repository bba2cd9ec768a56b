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
    return run_demo(privacy_mode=not args.show_content)


def register(commands: Any) -> None:
    demo = commands.add_parser(
        "demo", help="run an example app against a local fake OpenRouter and print the span tree"
    )
    demo.add_argument("--show-content", action="store_true", help="turn privacy mode off for the demo")
    demo.set_defaults(handler=_run)
