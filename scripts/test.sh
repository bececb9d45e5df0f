#!/usr/bin/env bash
# The project's test command: set up .venv, lint, then run the test suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -k compression).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
ruff check template neurons scripts tests
ruff format --check template neurons scripts tests
python -m pytest -q -ra "$@"
