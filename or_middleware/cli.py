"""The ``or-middleware`` command. Each subcommand lives in its own module with a ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

# One module per subcommand (demo, check, report/tail/prune, ...); each adds its parsers.
COMMAND_MODULES = (
    "or_middleware.demo.command",
    "or_middleware.demo.fake_command",
    "or_middleware.check",
    "or_middleware.report.command",
    "or_middleware.ui.command",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="or-middleware", description="LLM observability for any ASGI/WSGI app: tools around the middleware."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if not name.startswith(exc.name or "?"):  # it exists but something it needs is missing
                raise
            continue
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    raise SystemExit(main())
