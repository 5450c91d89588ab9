"""Every choice this project makes to run fast on XLA:CPU, in one place.

The measurements behind each are in docs/benchmarks.md.

1. Winograd 3x3 convolutions: conv_impl 'auto' is resolved once, when an IFIRNN is built
   (`resolve_conv_impl`), for JAX's default backend. In float32 on the CPU it becomes
   'winograd_large': a 3x3, padding-1 convolution runs as Winograd F(4x4, 3x3)
   (layers.py) when both channel counts are >= 16 and it has >= 16 output tiles of 4x4
   (`winograd_applies`); smaller ones run as fast as XLA's own convolution, which
   compiles several times faster. On other backends, or in bfloat16, 'auto' becomes
   'xla': XLA's convolution (cuDNN on GPUs).
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

CONV_IMPLS = ("auto", "xla", "winograd")  # IFIRNN.conv_impl: what a user asks for
# What the layers run, 'auto' resolved (`resolve_conv_impl`): XLA's convolutions; every
# 3x3 conv as Winograd; or Winograd for the 3x3 convs large enough to pay. The last two
# also run thin 5x5 convs (RGB in or out) as space-to-depth (layers.Conv).
LAYER_CONV_IMPLS = ("xla", "winograd", "winograd_large")
WINOGRAD_MIN_CHANNELS = 16
WINOGRAD_MIN_TILES = 16
WINOGRAD_TILE = 4  # output tile side of F(4x4, 3x3)


def start_command() -> None:
  """Re-executes this command once with 2 MiB pages for XLA's buffers (huge_pages.py)."""
  huge_pages.restart_with_huge_pages()


def stream_in_constant_memory() -> None:
  """For a command that streams frames: glibc's mmap threshold fixed (glibc_malloc.py)."""
  glibc_malloc.fix_mmap_threshold()


def resolve_conv_impl(impl: str, compute_dtype: Any, backend: str | None = None) -> str:
  """The LAYER_CONV_IMPLS entry for IFIRNN.conv_impl `impl` on `backend` (default: JAX's
  default backend, which this starts; only 'auto' in float32 asks for it)."""
  if impl not in CONV_IMPLS:
    raise ValueError(f"conv_impl must be one of {CONV_IMPLS}, got {impl!r}")
  if impl != "auto":
    return impl
  if jnp.dtype(compute_dtype) != jnp.float32:
    return "xla"
  return "winograd_large" if (backend or jax.default_backend()) == "cpu" else "xla"


def check_layer_conv_impl(impl: str) -> None:
  if impl not in LAYER_CONV_IMPLS:
    raise ValueError(f"a layer's conv impl must be one of {LAYER_CONV_IMPLS} (IFIRNN "
                     f"resolves conv_impl 'auto' with resolve_conv_impl), got {impl!r}")


def uses_cpu_formulations(layer_impl: str) -> bool:
  """Whether layers with `layer_impl` run the CPU formulations (Winograd, thin 5x5 convs
  as space-to-depth)."""
  check_layer_conv_impl(layer_impl)
  return layer_impl != "xla"


def winograd_applies(layer_impl: str, batch: int, height: int, width: int,
                     in_channels: int, out_channels: int) -> bool:
  """Whether a 3x3, padding-1 conv2d on [batch, height, width, in_channels] runs as Winograd."""
  if not uses_cpu_formulations(layer_impl):
    return False
  if layer_impl == "winograd":
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
  layer_impl = resolve_conv_impl(m.conv_impl, m.compute_dtype, backend)
  rolled = winograd_applies(layer_impl, per_device, side, side, fused, fused)
  return 1 if rolled else True
