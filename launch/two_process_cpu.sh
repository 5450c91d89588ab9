#!/usr/bin/env bash
# Two processes on this machine's loopback, CPU only: the multi-host code path without a
# cluster (what tests/test_train.py runs). Explicit flags instead of SLURM detection.
#   bash launch/two_process_cpu.sh configs/demo.py:tiny workdirs/two_process
set -euo pipefail
config=${1:-configs/demo.py:tiny}
workdir=${2:-workdirs/two_process}
port=${PORT:-$((20000 + RANDOM % 20000))}
for id in 0 1; do
  JAX_PLATFORMS=cpu python -m ifirnn_jax.train --config "$config" --workdir "$workdir" \
    --coordinator_address "127.0.0.1:$port" --num_processes 2 --process_id $id &
done
wait
