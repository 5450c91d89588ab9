"""Every choice this project makes to run fast on XLA:CPU, in one place.

The measurements behind each are in docs/benchmarks.md.

1. Winograd 3x3 convolutions (`winograd_applies`): conv_impl 'auto' runs a float32 3x3,
   padding-1 convolution on CPU as Winograd F(4x4, 3x3) (layers.py) when both channel
   counts are >= 16 and it has >= 16 output tiles of 4x4; smaller ones run as fast as
   XLA's own convolution, which compiles several times faster. On other backends, or in
   bfloat16, 'auto' is XLA's convolution (cuDNN on GPUs).
2. The frame scan (`resolve_scan_unroll`): on CPU, rolled when F_R's convolutions run as
   Winograd on one device's share of a training batch, fully unrolled otherwise (XLA's
   own convolutions differentiate much slower inside a rolled loop); 1 on accelerators.
3. One XLA CPU device per core for training, each step single-threaded, the batch split
   over them (`config.cpu_devices`; the mechanics are in cpu_devices.py).
4. 2 MiB pages for XLA's buffers: each command re-executes itself once with
   GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (huge_pages.py; IFIRNN_JAX_HUGE_PAGES=0: off).
5. For streaming commands, a fixed glibc mmap threshold, so that frame-sized buffers
   leave the resident set when freed (glibc_malloc.py).

`start_command` (4) is the one line of each command's `__main__`;
`stream_in_constant_memory` (5) the one line of deblur's `main`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from ifirnn_jax import glibc_malloc, huge_pages

CONV_IMPLS = ("auto", "xla", "winograd")
WINOGRAD_MIN_CHANNELS = 16
WINOGRAD_MIN_TILES = 16
WINOGRAD_TILE = 4  # output tile side of F(4x4, 3x3)


def start_command() -> None:
  """Re-executes this command once with 2 MiB pages for XLA's buffers (huge_pages.py)."""
  huge_pages.restart_with_huge_pages()


def stream_in_constant_memory() -> None:
  """For a command that streams frames: glibc's mmap threshold fixed (glibc_malloc.py)."""
  glibc_malloc.fix_mmap_threshold()


def uses_cpu_formulations(impl: str, dtype: Any, backend: str | None = None) -> bool:
  """Whether conv impl `impl` asks for the CPU formulations (Winograd, thin 5x5 convs
  as space-to-depth): 'winograd' always, 'auto' for float32 on the CPU backend."""
  if impl not in CONV_IMPLS:
    raise ValueError(f"conv impl must be one of {CONV_IMPLS}, got {impl!r}")
  if impl == "auto":
    return (backend or jax.default_backend()) == "cpu" and jnp.dtype(dtype) == jnp.float32
  return impl == "winograd"


def winograd_applies(impl: str, batch: int, height: int, width: int, in_channels: int,
                     out_channels: int, dtype: Any = jnp.float32,
                     backend: str | None = None) -> bool:
  """Whether a 3x3, padding-1 conv2d on [batch, height, width, in_channels] runs as Winograd."""
  if not uses_cpu_formulations(impl, dtype, backend):
    return False
  if impl == "winograd":
    return True
  tiles = batch * -(-height // WINOGRAD_TILE) * -(-width // WINOGRAD_TILE)
  return (min(in_channels, out_channels) >= WINOGRAD_MIN_CHANNELS
          and tiles >= WINOGRAD_MIN_TILES)


def resolve_scan_unroll(config: ml_collections.ConfigDict, backend: str | None = None,
                        device_count: int | None = None) -> int | bool:
  """config.model.scan_unroll, with 0 (auto) resolved for the backend and the batch split
  over `device_count` devices (default: all): rolled (1) on CPU when F_R's convolutions
  (at 1/4 of the crop) run as Winograd, fully unrolled (True) otherwise; 1 elsewhere."""
  m = config.model
  if m.scan_unroll != 0:
    return m.scan_unroll
  backend = backend or jax.default_backend()
  if backend != "cpu":
    return 1
  per_device = max(config.batch_size // (device_count or jax.device_count()), 1)
  side = config.crop_size // 4
  fused = m.n3 + m.nh
  rolled = winograd_applies(m.conv_impl, per_device, side, side, fused, fused,
                            m.compute_dtype, backend)
  return 1 if rolled else True
