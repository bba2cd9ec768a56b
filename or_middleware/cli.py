"""The ``or-middleware`` command. Each subcommand lives in its own module with a ``register(subparsers)``;
this module adds what every subcommand's help should have (a description, examples, plain text)
where the module did not give its own."""

from __future__ import annotations

import argparse
import importlib
import re
from collections.abc import Sequence

from or_middleware.version import __version__

# One module per subcommand (demo, check, report/tail/prune, ...); each adds its parsers.
COMMAND_MODULES = (
    "or_middleware.demo.command",
    "or_middleware.demo.fake_command",
    "or_middleware.check",
    "or_middleware.report.command",
    "or_middleware.ui.command",
)

DESCRIPTION = """\
LLM observability for any ASGI/WSGI app: the tools around the middleware. The middleware itself
is one line in your app (app.add_middleware(LLMTracingMiddleware)); these commands show what it
recorded, check where it sends spans, and give you a fake LLM API to try it and test with."""

EPILOG = """\
examples:
  or-middleware demo                  # see it work on this machine, no key needed
  or-middleware report                # usage by model from ./or_traces.db
  or-middleware tail                  # follow calls as they happen
  or-middleware check                 # can every configured destination be reached?
  or-middleware fake-upstream         # a fake OpenRouter on :8766 for your app and tests

Configuration comes from OR_MIDDLEWARE_* variables; see the README and docs/configuration.md."""

# command -> (description, examples), used where the command's module gave none
HELP_TEXT: dict[str, tuple[str, str]] = {
    "demo": (
        "Run a fake OpenRouter, an example FastAPI app with the middleware and three calls to it (a\n"
        "plain route, a chat call with a user and session, a streamed answer), and print each\n"
        "request's span tree; the calls also go to the local store, for report and ui (--no-store:\n"
        "not). Nothing leaves the machine; needs the demo extra.",
        "  or-middleware demo\n"
        "  or-middleware demo --show-content     # privacy mode off: prompts and answers in the tree",
    ),
    "check": (
        "",
        "  or-middleware check                   # each destination in OR_MIDDLEWARE_DESTINATIONS: OK or why not\n"
        "  or-middleware check --dry-run         # validate the configuration, show every target; send nothing\n"
        "  OR_MIDDLEWARE_DESTINATIONS=langfuse or-middleware check --span   # one small test span",
    ),
    "report": (
        "Requests, error rate, tokens, cost, latency and time to first chunk per group, from the local\n"
        "store the middleware writes (the local destination), and the top users by cost. --security\n"
        "lists the security signals instead. The table fits the terminal (COLUMNS); json and csv\n"
        "carry every column in full, for scripts.",
        "  or-middleware report                          # last 24 h, by model\n"
        "  or-middleware report --since 7d --by user\n"
        "  or-middleware report --by metadata.feature    # a key of the requests' trace metadata\n"
        "  or-middleware report --since all --format csv > usage.csv\n"
        "  or-middleware report --security\n"
        "  or-middleware report --db /srv/app/or_traces.db",
    ),
    "tail": (
        "Print the most recent LLM calls from the local store, one line each, then every new one as\n"
        "the app writes it, until Ctrl-C.",
        "  or-middleware tail\n"
        "  or-middleware tail -n 50 --db /srv/app/or_traces.db",
    ),
    "prune": (
        "Delete the calls (and their security signals) older than an age from the local store: the\n"
        "store keeps everything until you prune it.",
        "  or-middleware prune --older-than 90d --dry-run   # count only\n"
        "  or-middleware prune --older-than 90d --vacuum    # delete, then give the space back",
    ),
    "ui": (
        "Serve the Activity Explorer: a read-only web UI over the local store, on loopback unless\n"
        "you give it a token.",
        "  or-middleware ui                              # then open the address it prints\n"
        "  or-middleware ui --db /srv/app/or_traces.db --port 8900",
    ),
}

# (command, option) -> help, for options their module left without one
OPTION_HELP: dict[tuple[str, str], str] = {
    ("report", "--format"): "table (fits the terminal), json or csv (every column in full); default: table",
}


def plain(text: str) -> str:
    """Help text without reStructuredText markup (``literal``, :class:`Name`)."""
    text = re.sub(r":\w+:`~?([^`]*)`", r"\1", text)
    return re.sub(r"``([^`]*)``", r"\1", text)


def _polish(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    for name, sub in commands.choices.items():
        description, examples = HELP_TEXT.get(name, ("", ""))
        if sub.description:
            sub.description = plain(sub.description)
        elif description:
            sub.description = description
        if not sub.epilog and examples:
            sub.epilog = "examples:\n" + examples
        if sub.formatter_class is argparse.HelpFormatter:  # keep line breaks of descriptions and examples
            sub.formatter_class = argparse.RawDescriptionHelpFormatter
        for action in sub._actions:
            for option in action.option_strings:
                if action.help is None and (name, option) in OPTION_HELP:
                    action.help = OPTION_HELP[(name, option)]
            if action.help:
                action.help = plain(action.help)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="or-middleware", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"or-middleware {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if not name.startswith(exc.name or "?"):  # it exists but something it needs is missing
                raise
            continue
        module.register(commands)
    _polish(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    raise SystemExit(main())
