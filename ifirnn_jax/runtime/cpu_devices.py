"""Training on a multi-core CPU in one process: one XLA CPU device per core.

XLA:CPU runs one program on one device with one thread pool, but the model's small
convolutions leave that pool partly idle, so one device keeps fewer cores busy than it
has (docs/benchmarks.md has the measurements). Splitting the batch over one CPU
device per core, each compiled to run single-threaded (`xla_cpu_multi_thread_eigen=False`),
runs the shards side by side on their own cores, as `launch/cpu_processes.sh` does with
one process per core, but in one process and with an in-memory all-reduce.

JAX fixes the number of CPU devices when its backend starts (the first JAX operation),
so `request_cpu_devices` must run before that: `runtime.setup` does, which
`train.train_and_evaluate` and the benchmark's child processes call first thing. When the
backend is already running (a notebook that ran JAX before), when the user set
`--xla_force_host_platform_device_count` in XLA_FLAGS (theirs wins), or in a
multi-process run, it changes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import jax

# Compiler options for a step run on one of several CPU devices: one core each.
SINGLE_THREADED = {"xla_cpu_multi_thread_eigen": False}
FORCED_FLAG = "xla_force_host_platform_device_count"


def _count_forced() -> bool:
  """Whether the user's XLA_FLAGS fix the CPU device count."""
  return FORCED_FLAG in os.environ.get("XLA_FLAGS", "")


def usable_cores() -> int:
  """CPU cores this process may run on (its affinity mask, e.g. under taskset)."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # not Linux
    return os.cpu_count() or 1


def auto_count(batch_size: int, cores: int) -> int:
  """The most devices, at most `cores`, that split `batch_size` clips evenly."""
  return max(d for d in range(1, max(min(cores, batch_size), 1) + 1) if batch_size % d == 0)


def resolve(setting: int, batch_size: int, cores: int | None = None) -> int:
  """config.cpu_devices (0: auto, `auto_count` over `usable_cores`) as a device count."""
  if setting < 0:
    raise ValueError(f"cpu_devices must be >= 0 (0: one per core), got {setting}")
  return setting or auto_count(batch_size, usable_cores() if cores is None else cores)


def request_cpu_devices(count: int) -> bool:
  """Asks JAX for `count` CPU devices; True when the request was applied.

  Call before any JAX operation. Leaves things as they are (False) for count 1, when the
  user's XLA_FLAGS force a device count, in a `jax.distributed` run, or when the backend
  has already started.
  """
  if count <= 1 or _count_forced():
    return False
  if jax.distributed.is_initialized():
    return False
  try:
    jax.config.update("jax_num_cpu_devices", count)
  except RuntimeError:  # the backend is running: its device count is fixed
    return False
  return True


def step_compiler_options(devices: Sequence[jax.Device]) -> dict[str, bool] | None:
  """SINGLE_THREADED for a step over several local CPU devices of one process, else None.

  Several processes each with one CPU device are pinned one per core by their launcher
  and keep XLA's threads.
  """
  local = [d for d in devices if d.process_index == jax.process_index()]
  if len(local) > 1 and all(d.platform == "cpu" for d in local):
    return dict(SINGLE_THREADED)
  return None


def training_devices(count: int) -> list[jax.Device]:
  """The devices to train on: every device, except in a single-process CPU run whose
  device count the user did not force, where the first `count` (a notebook's backend may
  hold more devices than this run's batch splits over)."""
  devices = jax.devices()
  if jax.process_count() == 1 and devices[0].platform == "cpu" and not _count_forced():
    return devices[:max(count, 1)]
  return devices
