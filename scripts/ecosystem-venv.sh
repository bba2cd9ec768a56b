#!/usr/bin/env bash
# A side venv (.venv-ecosystem) with LiteLLM and LangChain's ChatOpenAI: they pin openai below the
# version the main venv tests, so they live apart. tests/test_clients_ecosystem.py uses it when present.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv-ecosystem
.venv-ecosystem/bin/python -m pip install --quiet --upgrade pip
.venv-ecosystem/bin/python -m pip install --quiet -e . litellm langchain-openai
.venv-ecosystem/bin/python -m pip check
