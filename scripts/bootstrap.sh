#!/usr/bin/env bash
# Create .venv (if missing) and install or_middleware with the extras given as arguments.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv >/dev/null 2>&1 || true
if [ ! -x .venv/bin/pip ]; then python3 -m venv --clear .venv; fi
extras="${1:-test}"
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[${extras}]"
