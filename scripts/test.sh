#!/usr/bin/env bash
# The test command of the README: set up .venv with the test extras, then run the whole suite.
# Extra arguments go to pytest, e.g. ./scripts/test.sh -k nero -x
set -euo pipefail
cd "$(dirname "$0")/.."
NERO_EXTRAS=test source scripts/setup_env.sh
.venv/bin/python -m ruff check pipeline stages tests scripts
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    echo "browser test: runs in headless Chromium (/usr/bin/chromium)"
elif [ -n "${CI:-}" ]; then
    echo "browser test: no Chromium, and CI is set: it will FAIL (apt-get install chromium chromium-driver)"
else
    echo "browser test: SKIPPED, no Chromium here (apt-get install chromium chromium-driver to run it)"
fi
exec .venv/bin/python -m pytest "$@"
