"""``or-middleware`` help: every subcommand has a description, examples and help for each option, in
plain text (no reStructuredText), ``--version`` works, and the whole help is a reviewed snapshot.

After an intended change of any help text: ``UPDATE_SNAPSHOTS=1 pytest tests/test_cli.py``
rewrites tests/snapshots/cli_help.txt; review its diff like code."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from or_middleware.cli import build_parser
from or_middleware.version import __version__
from tests.support.real_servers import REPO_ROOT

SNAPSHOT = Path(__file__).parent / "snapshots" / "cli_help.txt"


def help_of(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        build_parser().parse_args([*argv, "--help"])
    return out.getvalue()


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(commands.choices)


def all_help(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COLUMNS", "100")  # argparse wraps to the terminal: fix it for the snapshot
    monkeypatch.delenv("OR_MIDDLEWARE_LOCAL__PATH", raising=False)
    parts = [f"$ or-middleware --help\n{help_of()}"]
    parts += [f"$ or-middleware {name} --help\n{help_of(name)}" for name in subcommands()]
    return "\n".join(parts)


def test_every_subcommand_has_a_description_examples_and_option_help():
    for name, sub in subcommands().items():
        assert sub.description and len(sub.description) > 40, name
        assert sub.epilog and "examples:" in sub.epilog and f"or-middleware {name}" in sub.epilog, name
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"


def test_help_is_plain_text(monkeypatch):
    text = all_help(monkeypatch)
    assert "``" not in text
    assert not re.search(r":(class|func|mod|meth|attr):`", text)


def test_version():
    done = subprocess.run([sys.executable, "-m", "or_middleware", "--version"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"or-middleware {__version__}"


def test_help_matches_the_snapshot(monkeypatch):
    text = all_help(monkeypatch)
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(text)
    assert text == SNAPSHOT.read_text(), (
        "or-middleware help changed; if intended, run UPDATE_SNAPSHOTS=1 pytest tests/test_cli.py "
        "and review the diff of tests/snapshots/cli_help.txt")
