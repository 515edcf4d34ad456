#!/usr/bin/env bash
# The test command of the README: set up .venv with the test extras, then run the whole suite.
# Extra arguments go to pytest, e.g. ./scripts/test.sh -k nero -x
set -euo pipefail
cd "$(dirname "$0")/.."
NERO_EXTRAS=test source scripts/setup_env.sh
.venv/bin/python -m ruff check pipeline stages tests scripts
exec .venv/bin/python -m pytest "$@"
