#!/usr/bin/env bash
# One accelerator check within a fixed budget: bash launch/gpu_check.sh OUT_DIR [SECONDS]
# (default 480). Writes OUT_DIR/gpu_check.json and OUT_DIR/gpu_check.md; nothing is
# downloaded; uses whatever jax is installed. See ifirnn_jax/gpu_check.py.
set -euo pipefail
# 2 MiB pages for XLA:CPU's buffers (glibc >= 2.35 reads this when a process starts; the
# README's CPU notes). A glibc.malloc.hugetlb setting of the caller's wins.
case ":${GLIBC_TUNABLES:-}:" in
  *:glibc.malloc.hugetlb=*) ;;
  *) export GLIBC_TUNABLES="${GLIBC_TUNABLES:+$GLIBC_TUNABLES:}glibc.malloc.hugetlb=1" ;;
esac
cd "$(dirname "$0")/.."
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "error: usage: bash launch/gpu_check.sh OUT_DIR [SECONDS]" >&2
  exit 2
fi
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" exec python -m ifirnn_jax.gpu_check "$@"
