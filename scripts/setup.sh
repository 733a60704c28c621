#!/usr/bin/env bash
# Create .venv in the repository root and install swish_tf with its test tools.
# Pass SWISH_TF_EXTRA=gpu to install the CUDA build of TensorFlow instead of the CPU one.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[${SWISH_TF_EXTRA:-cpu},test]"
