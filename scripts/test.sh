#!/usr/bin/env bash
# Install (if needed) and run the default test suite. Tests that read real data find it in
# $SWISH_TF_DATA_DIR, the directory that contains cifar10/cifar-10-batches-py and multi30k/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export RAY_AUTH_MODE="${RAY_AUTH_MODE:-disabled}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
exec .venv/bin/python -m pytest "$@"
