"""Convolution layers with PyTorch semantics, written so XLA differentiates them fast.

Kernels are stored like Flax's (`[kh, kw, in, out]`), which maps one-to-one onto
PyTorch's `Conv2d` / `ConvTranspose2d` weights (see `storage/weights.py`). Two layers of the
spec are re-expressed as exact equivalents whose gradients are ordinary stride-1
convolutions (docs/benchmarks.md: strided and transposed convolution gradients are slow
paths on XLA:CPU):

* Conv 5x5, stride 2, padding 2 == space-to-depth(2) then a 3x3 conv, padding 1.
* ConvTranspose 4x4, stride 2, padding 1 == a 3x3 conv, padding 1, to 4x channels,
  then depth-to-space(2).

Both are fixed rearrangements of the same weights, so outputs equal PyTorch's to
float32 rounding (tests/test_models.py checks this against torch).

So every convolution of the network except the two 5x5 stride-1 ones is a stride-1 3x3
convolution with padding 1; on CPU those two, with RGB on one side, also become a 3x3
convolution, between space-to-depth and depth-to-space (see `Conv`). On CPU the 3x3
convolutions run as Winograd F(4x4, 3x3) (Lavin & Gray, "Fast Algorithms for
Convolutional Neural Networks", CVPR 2016): a fixed linear transform
of overlapping 6x6 input tiles, 36 batched [tiles, C_in] x [C_in, C_out] matmuls, and a
fixed transform back to 4x4 output tiles; 4x fewer multiply-adds than the direct
convolution and ordinary matmuls in the backward pass. In a chain of the network's
convolutions XLA:CPU runs it faster than its own convolution, forward and backward
(docs/benchmarks.md); alone, a large one can lose, as its 2.25x larger tile
buffers are fresh memory to page in (tests/test_layers.py checks it against
`lax.conv_general_dilated` and PyTorch). The error is a few times float32 rounding
(relative ~1e-6 per convolution). `impl` picks the algorithm, one of
LAYER_CONV_IMPLS: 'xla', 'winograd', or 'winograd_if_large' (Winograd for all but small
convolutions, `winograd_applies`); IFIRNN turns its conv_impl 'auto' into one of these
per platform when its computation is lowered (Winograd on CPU in float32, XLA's
convolution elsewhere, e.g. cuDNN on GPU; network.py). The CPU formulations run under the
`jax.named_scope`s CPU_SCOPES, so a lowered program shows whether it holds them.
Winograd costs compile time and memory for its tile buffers (docs/benchmarks.md).
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
_DIMS = ("NHWC", "HWIO", "NHWC")

CONV_IMPLS = ("auto", "xla", "winograd")  # IFIRNN.conv_impl: what a user asks for
# What the layers run: XLA's convolutions; every 3x3 conv as Winograd; or Winograd for the
# 3x3 convs large enough to pay. The last two also run thin 5x5 convs (RGB in or out) as
# space-to-depth (`Conv`): together, the CPU formulations.
LAYER_CONV_IMPLS = ("xla", "winograd", "winograd_if_large")
WINOGRAD_MIN_CHANNELS = 16
WINOGRAD_MIN_TILES = 16
WINOGRAD_TILE = 4  # output tile side of F(4x4, 3x3)
# jax.named_scope of each CPU formulation (visible in `lowered.as_text(debug_info=True)`).
WINOGRAD_SCOPE = "cpu_winograd"
SPACE_TO_DEPTH_SCOPE = "cpu_space_to_depth_5x5"
CPU_SCOPES = (WINOGRAD_SCOPE, SPACE_TO_DEPTH_SCOPE)


def check_layer_conv_impl(impl: str) -> None:
  if impl not in LAYER_CONV_IMPLS:
    raise ValueError(f"a layer's conv impl must be one of {LAYER_CONV_IMPLS}, got {impl!r}")


def runs_cpu_formulations(layer_impl: str) -> bool:
  """Whether layers with `layer_impl` run the CPU formulations (Winograd, thin 5x5 convs
  as space-to-depth)."""
  check_layer_conv_impl(layer_impl)
  return layer_impl != "xla"


def winograd_applies(layer_impl: str, batch: int, height: int, width: int,
                     in_channels: int, out_channels: int) -> bool:
  """Whether a 3x3, padding-1 conv2d on [batch, height, width, in_channels] runs as
  Winograd: always with 'winograd'; with 'winograd_if_large' when both channel counts are
  >= 16 and there are >= 16 output tiles of 4x4 (smaller ones run as fast as XLA's own
  convolution, which compiles several times faster)."""
  if not runs_cpu_formulations(layer_impl):
    return False
  if layer_impl == "winograd":
    return True
  tiles = batch * -(-height // WINOGRAD_TILE) * -(-width // WINOGRAD_TILE)
  return (min(in_channels, out_channels) >= WINOGRAD_MIN_CHANNELS
          and tiles >= WINOGRAD_MIN_TILES)

def torch_fan_in(kernel_shape: tuple[int, ...], transposed: bool = False) -> int:
  """fan_in as PyTorch takes it from a weight, here in HWIO / [in, out] layout: Conv2d's
  (and Linear's) in x kh x kw; ConvTranspose2d's out x kh x kw (PyTorch stores that weight
  as [in, out, kh, kw] and reads its dim 1)."""
  if transposed:
    return kernel_shape[0] * kernel_shape[1] * kernel_shape[3]
  return math.prod(kernel_shape[:-1])


def torch_init_bound(fan_in: int) -> float:
  """PyTorch's default init of a layer's weight and bias: U(-bound, bound), bound =
  1/sqrt(fan_in) (for the weight, kaiming_uniform(a=sqrt(5)) gives the same)."""
  return 1.0 / max(fan_in, 1) ** 0.5


def _torch_default_init(fan_in: int):
  bound = torch_init_bound(fan_in)
  return lambda key, shape, dtype=jnp.float32: jax.random.uniform(
      key, shape, dtype, -bound, bound)


# ----------------------------------------------------------------- Winograd F(4x4, 3x3)
# Interpolation points 0, +-1, +-2 and infinity. Output tile m = 4, input tile m + 2 = 6:
# y = A^T [(G g G^T) * (B^T d B)] A for a 6x6 input tile d and a 3x3 kernel g.
_TILE = WINOGRAD_TILE
_BT = np.array([[4, 0, -5, 0, 1, 0],
                [0, -4, -4, 1, 1, 0],
                [0, 4, -4, -1, 1, 0],
                [0, -2, -1, 2, 1, 0],
                [0, 2, -1, -2, 1, 0],
                [0, 4, 0, -5, 0, 1]], np.float64)  # [6, 6] input transform B^T
_G = np.array([[1 / 4, 0, 0],
               [-1 / 6, -1 / 6, -1 / 6],
               [-1 / 6, 1 / 6, -1 / 6],
               [1 / 24, 1 / 12, 1 / 6],
               [1 / 24, -1 / 12, 1 / 6],
               [0, 0, 1]], np.float64)  # [6, 3] kernel transform G
_AT = np.array([[1, 1, 1, 1, 1, 0],
                [0, 1, -1, 2, -2, 0],
                [0, 1, 1, 4, 4, 0],
                [0, 1, -1, 8, -8, 1]], np.float64)  # [4, 6] output transform A^T


_G_KRON = np.kron(_G, _G)  # [36, 9]: (G g G^T)[a, b] = sum_ij G[a, i] G[b, j] g[i, j]


def _input_transform_1d(d: list[Array]) -> list[Array]:
  """B^T d along one axis: 6 arrays -> 6 arrays (rows of _BT, common terms shared)."""
  four, five, two = (jnp.asarray(v, d[0].dtype) for v in (4, 5, 2))
  s12, d12 = lax.add(d[1], d[2]), lax.sub(d[1], d[2])
  d42, d13 = lax.sub(d[4], d[2]), lax.mul(two, lax.sub(d[1], d[3]))
  return [lax.add(lax.sub(lax.mul(four, d[0]), lax.mul(five, d[2])), d[4]),
          lax.sub(lax.add(d[3], d[4]), lax.mul(four, s12)),
          lax.add(lax.sub(d[4], d[3]), lax.mul(four, d12)),
          lax.sub(d42, d13),
          lax.add(d42, d13),
          lax.add(lax.sub(lax.mul(four, d[1]), lax.mul(five, d[3])), d[5])]


def _output_transform_1d(m: list[Array]) -> list[Array]:
  """A^T m along one axis: 6 arrays -> 4 arrays (rows of _AT, common terms shared)."""
  two, four, eight = (jnp.asarray(v, m[0].dtype) for v in (2, 4, 8))
  s12, d12 = lax.add(m[1], m[2]), lax.sub(m[1], m[2])
  s34, d34 = lax.add(m[3], m[4]), lax.sub(m[3], m[4])
  return [lax.add(lax.add(m[0], s12), s34),
          lax.add(d12, lax.mul(two, d34)),
          lax.add(s12, lax.mul(four, s34)),
          lax.add(lax.add(d12, lax.mul(eight, d34)), m[5])]


def _stack(arrays: list[Array], axis: int) -> Array:
  return lax.concatenate([lax.expand_dims(a, (axis,)) for a in arrays], axis)


def _every_4th(x: Array, axis: int, start: int, count: int) -> Array:
  """x[..., start::4, ...] along `axis`, `count` entries."""
  return lax.slice_in_dim(x, start, start + _TILE * (count - 1) + 1, _TILE, axis)


def winograd_kernel(kernel: Array) -> Array:
  """[3, 3, I, O] kernel -> G g G^T: [6, 6, I, O] (Winograd domain), one small matmul."""
  k_in, k_out = kernel.shape[2], kernel.shape[3]
  u = jnp.dot(jnp.asarray(_G_KRON, kernel.dtype), kernel.reshape(9, k_in * k_out),
              precision=lax.Precision.HIGHEST)
  return u.reshape(6, 6, k_in, k_out)


def _winograd_input(x: Array) -> Array:
  """x [N, H, W, C] -> B^T d B for every 6x6 tile d (stride 4, padding 1): [6, 6, N, th, tw, C]."""
  _, h, w, _ = x.shape
  m, a = _TILE, _TILE + 2
  th, tw = -(-h // m), -(-w // m)
  xp = lax.pad(x, jnp.zeros((), x.dtype),
               [(0, 0, 0), (1, th * m + 1 - h, 0), (1, tw * m + 1 - w, 0), (0, 0, 0)])
  # Separable: rows first (one fused loop writing [6, N, th, W + 2, C]), then columns.
  rows = _stack(_input_transform_1d([_every_4th(xp, 1, r, th) for r in range(a)]), 0)
  return _stack(_input_transform_1d([_every_4th(rows, 3, s, tw) for s in range(a)]), 1)


def _winograd_output(products: Array, height: int, width: int) -> Array:
  """A^T M A per tile: products [6, 6, N, th, tw, O] -> [N, height, width, O]."""
  _, _, n, th, tw, o = products.shape
  m, a = _TILE, _TILE + 2
  cols = _stack(_output_transform_1d([products[:, j] for j in range(a)]), 1)  # [6, 4, ...]
  y = _stack(_output_transform_1d([cols[i] for i in range(a)]), 0)  # [4 (row), 4 (col), ...]
  y = lax.transpose(y, (2, 3, 0, 4, 1, 5)).reshape(n, th * m, tw * m, o)
  return lax.slice(y, (0, 0, 0, 0), (n, height, width, o))


@jax.jit
def winograd_conv3x3(x: Array, kernel: Array) -> Array:
  """Stride-1 3x3 cross-correlation, zero padding 1, as Winograd F(4x4, 3x3).

  x [N, H, W, C] (any H, W >= 1), kernel [3, 3, C, O] -> [N, H, W, O]. The H x W output is
  covered by ceil(H/4) x ceil(W/4) tiles (the input is zero-padded to fit, then cropped).
  Jitted so that JAX traces and differentiates it once per shape, not once per layer.
  """
  n, h, w, c = x.shape
  a = _TILE + 2
  with jax.named_scope(WINOGRAD_SCOPE):
    tiles = _winograd_input(x)  # [6, 6, N, th, tw, C]
    th, tw = tiles.shape[3], tiles.shape[4]
    u = winograd_kernel(kernel.astype(x.dtype))  # [6, 6, C, O]
    # 36 matmuls [tiles, C] x [C, O], batched over the 6 x 6 tile positions.
    products = lax.dot_general(tiles.reshape(a, a, n * th * tw, c), u,
                               (((3,), (2,)), ((0, 1), (0, 1))))
    return _winograd_output(products.reshape(a, a, n, th, tw, u.shape[-1]), h, w)


def _uses_winograd(impl: str, x: Array, kernel: Array, padding: int) -> bool:
  n, h, w, c = x.shape
  return (winograd_applies(impl, n, h, w, c, kernel.shape[3])  # checks impl
          and kernel.shape[:2] == (3, 3) and padding == 1)


def conv2d(x: Array, kernel: Array, bias: Array, padding: int, impl: str = "xla") -> Array:
  """Stride-1 cross-correlation, symmetric zero padding. x [N, H, W, C], kernel [k, k, C, O].

  impl: 'xla' (`lax.conv_general_dilated`), 'winograd' (`winograd_conv3x3` for 3x3 kernels
  with padding 1, 'xla' otherwise) or 'winograd_if_large': 'winograd' when C and O >= 16 and
  there are >= 16 4x4 output tiles, else 'xla' (`winograd_applies`).
  """
  kernel = kernel.astype(x.dtype)
  if _uses_winograd(impl, x, kernel, padding):
    y = winograd_conv3x3(x, kernel)
  else:
    y = lax.conv_general_dilated(x, kernel, (1, 1), [(padding, padding)] * 2,
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


# Stride-1 5x5/p2 on space_to_depth(x): output row 2Y + a reads input row 2(Y + d) + b through
# kernel tap 2d + b - a + 2; index 5 marks "no tap" (outside 0..4: a zero row appended).
_SAME5X5_TAPS = np.array([[[5 if not 0 <= 2 * d + b - a + 2 <= 4 else 2 * d + b - a + 2
                            for a in (0, 1)] for b in (0, 1)] for d in (-1, 0, 1)])  # [d+1, b, a]


def same5x5_as_space_to_depth_kernel(kernel: Array) -> Array:
  """[5, 5, I, O] stride-1 kernel -> [3, 3, 4I, 4O] kernel: space_to_depth, 3x3 conv
  (padding 1), depth_to_space equals the 5x5 conv with padding 2 (H, W even)."""
  k_in, k_out = kernel.shape[2], kernel.shape[3]
  k = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))  # [6, 6, I, O]
  rows = _SAME5X5_TAPS[:, :, :, None, None, None]
  cols = _SAME5X5_TAPS[None, None, None, :, :, :]
  k = k[rows, cols]  # [3 (d_row), 2 (b), 2 (a), 3 (d_col), 2 (b'), 2 (a'), I, O]
  return k.transpose(0, 3, 1, 4, 6, 2, 5, 7).reshape(3, 3, 4 * k_in, 4 * k_out)


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


# A 5x5 conv with this many input or output channels or fewer (RGB) is thin (see Conv).
_THIN_CHANNELS = 4


class Conv(nn.Module):
  """PyTorch `Conv2d(in, features, k, stride, padding=k // 2)` on NHWC input.

  stride 2 is supported for k = 5 (the spec's only strided conv); input H, W even.
  impl: convolution algorithm, one of LAYER_CONV_IMPLS (see `conv2d`); parameters are the
  same. With the CPU formulations ('winograd', 'winograd_if_large'), a stride-1 5x5 conv with at
  most 4 input or output channels (F_B's RGB input layer, F_L's RGB output layer) on even
  H, W runs as space_to_depth, a 3x3 XLA conv (4x the channels in and out) and
  depth_to_space: XLA:CPU's direct 5x5 conv on 3 channels is several times slower
  (`benchmark` measures the models; docs/benchmarks.md).
  """

  features: int
  kernel_size: int
  stride: int = 1
  impl: str = "xla"

  @nn.compact
  def __call__(self, x: Array) -> Array:
    k = self.kernel_size
    shape = (k, k, x.shape[-1], self.features)
    kernel = self.param("kernel", _torch_default_init(torch_fan_in(shape)), shape)
    bias = self.param("bias", _torch_default_init(torch_fan_in(shape)), (self.features,))
    if self.stride == 1:
      thin = k == 5 and min(x.shape[-1], self.features) <= _THIN_CHANNELS
      even = x.shape[1] % 2 == 0 and x.shape[2] % 2 == 0
      if thin and even and runs_cpu_formulations(self.impl):
        with jax.named_scope(SPACE_TO_DEPTH_SCOPE):
          return depth_to_space(conv2d(space_to_depth(x),
                                       same5x5_as_space_to_depth_kernel(kernel),
                                       jnp.tile(bias, 4), padding=1, impl="xla"))
      return conv2d(x, kernel, bias, padding=k // 2, impl=self.impl)
    if (self.stride, k) != (2, 5):
      raise NotImplementedError("only 5x5 stride-2 convolutions are strided here")
    return conv2d(space_to_depth(x), strided5x5_as_space_to_depth_kernel(kernel),
                  bias, padding=1, impl=self.impl)


class ConvTranspose(nn.Module):
  """PyTorch `ConvTranspose2d(in, features, 4, stride=2, padding=1)`: doubles H and W."""

  features: int
  impl: str = "xla"

  @nn.compact
  def __call__(self, x: Array) -> Array:
    shape = (4, 4, x.shape[-1], self.features)
    init = _torch_default_init(torch_fan_in(shape, transposed=True))
    kernel = self.param("kernel", init, shape)
    bias = self.param("bias", init, (self.features,))
    y = conv2d(x, transposed4x4_as_conv_kernel(kernel), jnp.tile(bias, 4), padding=1,
               impl=self.impl)
    return depth_to_space(y)


class ResBlock(nn.Module):
  """EDSR residual block: conv3x3, ReLU, conv3x3, plus identity (no BN, no final ReLU)."""

  features: int
  impl: str = "xla"

  @nn.compact
  def __call__(self, x: Array) -> Array:
    y = nn.relu(Conv(self.features, 3, impl=self.impl, name="conv1")(x))
    return x + Conv(self.features, 3, impl=self.impl, name="conv2")(y)
