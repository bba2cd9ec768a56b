#!/usr/bin/env bash
# A separate venv with Arize Phoenix for the @pytest.mark.phoenix end-to-end test (tests/test_phoenix.py).
# Separate because Phoenix pins anthropic<2 while our test extra tests the current anthropic SDK;
# the test only talks to Phoenix over HTTP, so it runs `phoenix serve` from here.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f .venv-phoenix/.installed ]; then  # written last: an interrupted install is redone
  python3 -m venv --clear .venv-phoenix
  .venv-phoenix/bin/python -m pip install --quiet --upgrade pip
  .venv-phoenix/bin/python -m pip install --quiet "arize-phoenix>=20,<21"
  touch .venv-phoenix/.installed
fi
.venv-phoenix/bin/python -m pip check
