"""How the model runs on each platform: the layers' convolution algorithm and the frame
scan's unroll, chosen for the platform a computation is lowered for.

`per_platform` stages both choices out with `jax.lax.platform_dependent`; lowering for
one platform keeps only its branch, so building a model, `init` and the forward pass
never ask JAX's default backend, and a model jitted onto a CPU device runs the CPU
formulation even where a GPU is the default. Each branch is traced (not compiled)
once more than a single formulation would be.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp

from ifirnn_jax.model.layers import CONV_IMPLS, winograd_applies


def conv_impls(conv_impl: str, compute_dtype: Any) -> tuple[str, str]:
  """(on CPU, elsewhere): the layers.LAYER_CONV_IMPLS entries IFIRNN.conv_impl runs as.
  'auto' is Winograd where it pays on CPU in float32, XLA's convolution (cuDNN and co.)
  otherwise. ValueError for a conv_impl not in layers.CONV_IMPLS."""
  if conv_impl not in CONV_IMPLS:
    raise ValueError(f"conv_impl must be one of {CONV_IMPLS}, got {conv_impl!r}")
  if conv_impl != "auto":
    return conv_impl, conv_impl
  cpu = "winograd_if_large" if jnp.dtype(compute_dtype) == jnp.float32 else "xla"
  return cpu, "xla"


def frame_scan_unroll(scan_unroll: int | bool, layer_impl: str, on_cpu: bool, batch: int,
                      height: int, width: int, channels: int) -> int | bool:
  """IFIRNN.scan_unroll with 0 (auto) resolved for F_R's convolutions on
  [batch, height, width, channels] run as `layer_impl`: on CPU rolled (1) when they run
  as Winograd, fully unrolled (True) otherwise; 1 on other platforms."""
  if scan_unroll is True or scan_unroll != 0:
    return scan_unroll
  if not on_cpu:
    return 1
  rolled = winograd_applies(layer_impl, batch, height, width, channels, channels)
  return 1 if rolled else True


def choices(conv_impl: str, compute_dtype: Any, scan_unroll: int | bool,
            fused_shape: tuple[int, int, int, int]) -> tuple[tuple, tuple]:
  """(on CPU, elsewhere): each a (layer impl, frame scan unroll) for an IFIRNN whose F_R
  runs on `fused_shape` [B, H/4, W/4, n3 + nh]."""
  cpu, other = conv_impls(conv_impl, compute_dtype)
  return ((cpu, frame_scan_unroll(scan_unroll, cpu, True, *fused_shape)),
          (other, frame_scan_unroll(scan_unroll, other, False, *fused_shape)))


def per_platform(run: Callable[..., Any], on_cpu: tuple, elsewhere: tuple, *args: Any,
                 **static: Any) -> Any:
  """run(*on_cpu, *args, **static) on CPU, run(*elsewhere, *args, **static) on other
  platforms; `args` are arrays (pytrees), `static` Python values. One trace when both
  choices are the same."""
  if on_cpu == elsewhere:
    return run(*on_cpu, *args, **static)
  return jax.lax.platform_dependent(*args, cpu=functools.partial(run, *on_cpu, **static),
                                    default=functools.partial(run, *elsewhere, **static))
