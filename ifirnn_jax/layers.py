"""Convolution layers with PyTorch semantics, written so XLA differentiates them fast.

Kernels are stored like Flax's (`[kh, kw, in, out]`), which maps one-to-one onto
PyTorch's `Conv2d` / `ConvTranspose2d` weights (see `weights.py`). Two layers of the
spec are re-expressed as exact equivalents whose gradients are ordinary stride-1
convolutions (PERFORMANCE.md: strided and transposed convolution gradients are slow
paths on XLA:CPU):

* Conv 5x5, stride 2, padding 2 == space-to-depth(2) then a 3x3 conv, padding 1.
* ConvTranspose 4x4, stride 2, padding 1 == a 3x3 conv, padding 1, to 4x channels,
  then depth-to-space(2).

Both are fixed rearrangements of the same weights, so outputs equal PyTorch's to
float32 rounding (tests/test_models.py checks this against torch).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
_DIMS = ("NHWC", "HWIO", "NHWC")

# PyTorch's default init: kaiming_uniform(a=sqrt(5)) == U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
_torch_default_kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def _bias_init(fan_in: int):
  bound = 1.0 / max(fan_in, 1) ** 0.5
  return lambda key, shape, dtype=jnp.float32: jax.random.uniform(
      key, shape, dtype, -bound, bound)


def conv2d(x: Array, kernel: Array, bias: Array, padding: int) -> Array:
  """Stride-1 cross-correlation, symmetric zero padding. x [N, H, W, C]."""
  y = jax.lax.conv_general_dilated(
      x, kernel.astype(x.dtype), (1, 1), [(padding, padding)] * 2,
      dimension_numbers=_DIMS)
  return y + bias.astype(x.dtype)


def space_to_depth(x: Array) -> Array:
  """[N, H, W, C] -> [N, H/2, W/2, 4C], channel order (row parity, col parity, C)."""
  n, h, w, c = x.shape
  x = x.reshape(n, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(n, h // 2, w // 2, 4 * c)


def depth_to_space(x: Array) -> Array:
  """[N, H, W, 4C] (row parity, col parity, C) -> [N, 2H, 2W, C]."""
  n, h, w, c4 = x.shape
  c = c4 // 4
  x = x.reshape(n, h, w, 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(n, 2 * h, 2 * w, c)


def strided5x5_as_space_to_depth_kernel(kernel: Array) -> Array:
  """[5, 5, I, O] stride-2 kernel -> [3, 3, 4I, O] kernel acting on space_to_depth(x).

  Tap i of the 5x5 kernel reads input row 2y + i - 2 = 2(y + d) + a with
  d = i // 2 - 1 and parity a = i % 2; tap 5 (d = 1, a = 1) does not exist (zero).
  """
  k_in, k_out = kernel.shape[2], kernel.shape[3]
  k = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))  # [6, 6, I, O]
  k = k.reshape(3, 2, 3, 2, k_in, k_out)  # [d_row, a, d_col, b, I, O]
  return k.transpose(0, 2, 1, 3, 4, 5).reshape(3, 3, 4 * k_in, k_out)


# Transposed 4x4/s2/p1: output row 2Y + a reads input row Y + d (d = -1, 0, 1) through
# kernel tap ky = a + 1 - 2d; index 4 marks "no tap" (a zero row appended below).
_TRANSPOSED_TAPS = np.array([[3, 4], [1, 2], [4, 0]])  # [d + 1, a] -> ky


def transposed4x4_as_conv_kernel(kernel: Array) -> Array:
  """[4, 4, I, O] ConvTranspose kernel -> [3, 3, I, 4O] kernel followed by depth_to_space."""
  k_in, k_out = kernel.shape[2], kernel.shape[3]
  k = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))  # [5, 5, I, O]
  rows = _TRANSPOSED_TAPS[:, :, None, None]
  cols = _TRANSPOSED_TAPS[None, None, :, :]
  k = k[rows, cols]  # [3 (d_row), 2 (a), 3 (d_col), 2 (b), I, O]
  return k.transpose(0, 2, 4, 1, 3, 5).reshape(3, 3, k_in, 4 * k_out)


class Conv(nn.Module):
  """PyTorch `Conv2d(in, features, k, stride, padding=k // 2)` on NHWC input.

  stride 2 is supported for k = 5 (the spec's only strided conv); input H, W even.
  """

  features: int
  kernel_size: int
  stride: int = 1

  @nn.compact
  def __call__(self, x: Array) -> Array:
    k, fan_in = self.kernel_size, self.kernel_size**2 * x.shape[-1]
    kernel = self.param("kernel", _torch_default_kernel_init,
                        (k, k, x.shape[-1], self.features))
    bias = self.param("bias", _bias_init(fan_in), (self.features,))
    if self.stride == 1:
      return conv2d(x, kernel, bias, padding=k // 2)
    if (self.stride, k) != (2, 5):
      raise NotImplementedError("only 5x5 stride-2 convolutions are strided here")
    return conv2d(space_to_depth(x), strided5x5_as_space_to_depth_kernel(kernel),
                  bias, padding=1)


class ConvTranspose(nn.Module):
  """PyTorch `ConvTranspose2d(in, features, 4, stride=2, padding=1)`: doubles H and W."""

  features: int

  @nn.compact
  def __call__(self, x: Array) -> Array:
    fan_in = 16 * x.shape[-1]
    kernel = self.param("kernel", _torch_default_kernel_init,
                        (4, 4, x.shape[-1], self.features))
    bias = self.param("bias", _bias_init(fan_in), (self.features,))
    y = conv2d(x, transposed4x4_as_conv_kernel(kernel), jnp.tile(bias, 4), padding=1)
    return depth_to_space(y)


class ResBlock(nn.Module):
  """EDSR residual block: conv3x3, ReLU, conv3x3, plus identity (no BN, no final ReLU)."""

  features: int

  @nn.compact
  def __call__(self, x: Array) -> Array:
    y = nn.relu(Conv(self.features, 3, name="conv1")(x))
    return x + Conv(self.features, 3, name="conv2")(y)
