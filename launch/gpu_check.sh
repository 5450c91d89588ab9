#!/usr/bin/env bash
# One accelerator check within a fixed budget: bash launch/gpu_check.sh OUT_DIR [SECONDS]
# (default 480). Writes OUT_DIR/gpu_check.json and OUT_DIR/gpu_check.md; nothing is
# downloaded; uses whatever jax is installed. See ifirnn_jax/gpu_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "error: usage: bash launch/gpu_check.sh OUT_DIR [SECONDS]" >&2
  exit 2
fi
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" exec python -m ifirnn_jax.gpu_check "$@"
