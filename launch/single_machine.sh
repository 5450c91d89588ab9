#!/usr/bin/env bash
# Train on one machine with all its GPUs (or CPU cores): the jitted step shards the
# global batch over every local device on the 'data' mesh axis; nothing else to set.
#   bash launch/single_machine.sh configs/gopro_c2h3_reg.py /data/GOPRO_Large [extra flags]
# Restrict GPUs with CUDA_VISIBLE_DEVICES; config.batch_size must divide by their count.
set -euo pipefail
config=${1:?usage: single_machine.sh CONFIG DATA_ROOT [flags...]}
root=${2:?usage: single_machine.sh CONFIG DATA_ROOT [flags...]}
shift 2
name=$(basename "$config" .py)
exec python -m ifirnn_jax.train --config "$config" --config.data.root="$root" \
  --workdir "${WORKDIR:-workdirs/$name}" "$@"
