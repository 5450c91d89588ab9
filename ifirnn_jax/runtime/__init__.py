"""The machine's choices, made once per process at the edge (the model knows none of them).

The model (model/network.py, model/layers.py) picks its CPU formulations per platform when it is
lowered; everything that belongs to the process instead lives here, set up in order by
`setup`, which every command calls first and a notebook may call before any JAX
operation:

1. For commands that stream frames, a fixed glibc mmap threshold, so that frame-sized
   buffers leave the resident set when freed (glibc_malloc.py).
2. One XLA CPU device per core for training, each step single-threaded, the batch split
   over them (cpu_devices.py). JAX fixes its device count when its backend starts (the
   first JAX operation), so this must come before that.
3. 2 MiB pages for XLA's buffers (huge_pages.py): glibc reads GLIBC_TUNABLES only at
   process start, so the environment sets it (the launch scripts export
   GLIBC_TUNABLES=glibc.malloc.hugetlb=1); `setup` reports whether it is set.

The measurements behind each are in docs/benchmarks.md.
"""

from __future__ import annotations

from typing import NamedTuple

import jax

from ifirnn_jax.runtime import cpu_devices, glibc_malloc, huge_pages


class Runtime(NamedTuple):
  """What `setup` did: CPU devices requested (applied or not), the mmap threshold fixed,
  and whether 2 MiB pages are asked for by the environment."""

  cpu_devices_applied: bool
  mmap_threshold_fixed: bool
  huge_pages: huge_pages.Status


def setup(cpu_device_count: int = 1, *, stream_frames: bool = False) -> Runtime:
  """The process-wide settings, in order; call first, before any JAX operation.

  Args:
    cpu_device_count: XLA CPU devices to ask for (training; cpu_devices.resolve turns
      config.cpu_devices into it). 1 leaves JAX's default; a running backend, the user's
      XLA_FLAGS or a multi-process run keep theirs (cpu_devices.request_cpu_devices).
    stream_frames: fix glibc's mmap threshold (commands that stream video frames).
  """
  fixed = glibc_malloc.fix_mmap_threshold() if stream_frames else False
  applied = cpu_devices.request_cpu_devices(cpu_device_count)
  return Runtime(applied, fixed, huge_pages.status())


def default_platform() -> str:
  """JAX's default backend ('cpu', 'gpu', 'tpu'); starts the backend, so only after `setup`."""
  return jax.default_backend()
