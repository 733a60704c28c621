#!/usr/bin/env bash
# Install swish_tf into .venv and run the quick CPU search on CIFAR-10.
# Usage: bash scripts/quickstart.sh /path/to/cifar-10-batches-py [RUN_DIR] [extra search flags]
# Rerunning the same command resumes an interrupted search.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ]; then
  echo "usage: bash scripts/quickstart.sh /path/to/cifar-10-batches-py [RUN_DIR]" >&2
  exit 2
fi
data_dir="$1"
run_dir="${2:-runs/quick}"
shift $(( $# < 2 ? $# : 2 ))
if [ ! -e "$data_dir" ]; then
  echo "error: CIFAR-10 not found at $data_dir; pass the cifar-10-batches-py directory or the" \
       "cifar-10-python.tar.gz archive" >&2
  exit 2
fi
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
export RAY_AUTH_MODE="${RAY_AUTH_MODE:-disabled}"
exec .venv/bin/python -m search.run --gin_file=gin_configs/search/quick_cpu.gin \
  --data_dir="$data_dir" --run_dir="$run_dir" "$@"
