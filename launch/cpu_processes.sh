#!/usr/bin/env bash
# Training on a CPU as one process per core, each pinned to its core, the processes
# training together through jax.distributed on loopback (gloo; each feeds its share of
# every batch). On XLA:CPU this steps faster than one process spread over the same cores
# (docs/benchmarks.md). It is also the multi-host code path without a cluster
# (what tests/test_train.py runs with explicit flags).
#   bash launch/cpu_processes.sh CONFIG WORKDIR [NUM_PROCESSES] [--config.FIELD=VALUE ...]
#   bash launch/cpu_processes.sh configs/demo.py workdirs/demo_cpu 2 --config.batch_size=4
# NUM_PROCESSES defaults to the cores this shell may use; config.batch_size must be
# divisible by it. PYTHON picks the interpreter (default: python). Linux only (taskset,
# from util-linux).
set -euo pipefail
# 2 MiB pages for XLA:CPU's buffers (glibc >= 2.35 reads this when a process starts; the
# README's CPU notes). A glibc.malloc.hugetlb setting of the caller's wins.
case ":${GLIBC_TUNABLES:-}:" in
  *:glibc.malloc.hugetlb=*) ;;
  *) export GLIBC_TUNABLES="${GLIBC_TUNABLES:+$GLIBC_TUNABLES:}glibc.malloc.hugetlb=1" ;;
esac
config=${1:-configs/demo.py:tiny}
workdir=${2:-workdirs/cpu_processes}
processes=${3:-$(nproc)}
shift $(($# < 3 ? $# : 3))
command -v taskset >/dev/null || { echo "error: taskset (util-linux) is needed to pin the processes to cores" >&2; exit 2; }
python=${PYTHON:-python}
read -r -a cores <<<"$("$python" -c 'import os; print(*sorted(os.sched_getaffinity(0)))')"
if ! [[ $processes =~ ^[0-9]+$ ]] || ((processes < 1 || processes > ${#cores[@]})); then
  echo "error: NUM_PROCESSES must be 1 to ${#cores[@]} (the cores available), got $processes" >&2
  exit 2
fi
port=${PORT:-$((20000 + RANDOM % 20000))}
pids=()
for ((id = 0; id < processes; id++)); do
  JAX_PLATFORMS=cpu taskset -c "${cores[id]}" "$python" -m ifirnn_jax.train \
    --config "$config" --workdir "$workdir" --coordinator_address "127.0.0.1:$port" \
    --num_processes "$processes" --process_id "$id" "$@" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
exit "$status"
