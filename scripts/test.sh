#!/usr/bin/env bash
# The test command of the README: unit tests and (from the notebooks' issue on) the notebooks
# executed by nbmake at reduced steps, two workers with one thread each on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 MPLBACKEND=Agg
python -m pytest -n 2 tests "$@"
