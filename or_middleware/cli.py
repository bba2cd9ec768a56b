"""The ``or-middleware`` command: demo (more subcommands arrive with their features)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _demo(args: argparse.Namespace) -> int:
    try:
        from or_middleware.demo.run import run_demo
    except ImportError as exc:
        print(f"or-middleware demo needs the demo extra: pip install 'or-middleware[demo]' ({exc})", file=sys.stderr)
        return 2
    return run_demo(privacy_mode=not args.show_content)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="or-middleware", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="run an example app against a local fake OpenRouter and print the span tree"
    )
    demo.add_argument("--show-content", action="store_true", help="turn privacy mode off for the demo")
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    raise SystemExit(main())
