#!/usr/bin/env bash
# The whole test suite (what CI runs): installs the test extra, checks dependencies and style, runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh test
.venv/bin/python -m pip check
# Arize Phoenix in its own venv for the end-to-end test (tests/test_phoenix.py); required here, so
# the test cannot be skipped silently in CI.
bash scripts/phoenix-venv.sh
export REQUIRE_PHOENIX_TEST=1
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
