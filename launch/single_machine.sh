#!/usr/bin/env bash
# Train on one machine with all its GPUs (or CPU cores): the jitted step shards the
# global batch over every local device on the 'data' mesh axis; nothing else to set.
#   bash launch/single_machine.sh configs/gopro_c2h3_reg.py /data/GOPRO_Large [extra flags]
# Restrict GPUs with CUDA_VISIBLE_DEVICES; config.batch_size must divide by their count.
set -euo pipefail
# 2 MiB pages for XLA:CPU's buffers (glibc >= 2.35 reads this when a process starts; the
# README's CPU notes). A glibc.malloc.hugetlb setting of the caller's wins.
case ":${GLIBC_TUNABLES:-}:" in
  *:glibc.malloc.hugetlb=*) ;;
  *) export GLIBC_TUNABLES="${GLIBC_TUNABLES:+$GLIBC_TUNABLES:}glibc.malloc.hugetlb=1" ;;
esac
config=${1:?usage: single_machine.sh CONFIG DATA_ROOT [flags...]}
root=${2:?usage: single_machine.sh CONFIG DATA_ROOT [flags...]}
shift 2
name=$(basename "$config" .py)
exec python -m ifirnn_jax.train --config "$config" --config.data.root="$root" \
  --workdir "${WORKDIR:-workdirs/$name}" "$@"
