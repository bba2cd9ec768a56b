#!/usr/bin/env bash
# The whole test suite (what CI runs): installs the test extra, checks dependencies and style, runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh test
.venv/bin/python -m pip check
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
