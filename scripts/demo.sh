#!/usr/bin/env bash
# The main job on embedded defaults: a local fake OpenRouter, an example FastAPI app with the
# middleware, a few calls, and the span tree printed by the console destination.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh demo
exec .venv/bin/or-middleware demo "$@"
