#!/usr/bin/env bash
# The test command of the README: the unit tests, and every notebook executed by nbmake with each
# phase shortened to GROWLIB_STEPS steps; two workers with one thread each fit a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 MPLBACKEND=Agg
export GROWLIB_STEPS="${GROWLIB_STEPS:-5}" GROWLIB_HEADLESS=1  # tests/test_browser.py unsets it for its JupyterLab
python -m pytest -n 2 --dist loadgroup --durations=15 --nbmake --nbmake-timeout=900 tests notebooks "$@"
