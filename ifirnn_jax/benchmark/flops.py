"""The spec's FLOP count of IFI-RNN (multiply-adds of the layer table, independent of XLA)."""

from __future__ import annotations

from ifirnn_jax.model.network import IFIRNN


def _taps(size_in: int, kernel: int, stride: int, padding: int, transposed: bool,
          count_padding: bool) -> int:
  """Kernel taps summed over the positions of one spatial dimension of a convolution.

  A conv counts, per output position, the taps it reads; a transposed conv (PyTorch
  semantics) counts, per input position, the taps it writes. With count_padding False,
  only taps that touch a real (non-padding) pixel count, as XLA's cost analysis does.
  """
  if transposed:
    size_out = (size_in - 1) * stride - 2 * padding + kernel
    positions, limit = range(size_in), size_out
  else:
    size_out = (size_in + 2 * padding - kernel) // stride + 1
    positions, limit = range(size_out), size_in
  if count_padding:
    return len(positions) * kernel
  return sum(1 for o in positions for i in range(kernel) if 0 <= o * stride + i - padding < limit)


def _conv_macs(h: int, w: int, kernel: int, c_in: int, c_out: int, stride: int = 1,
               transposed: bool = False, count_padding: bool = True) -> int:
  """Multiply-adds of a conv on an h x w input (padding kernel // 2; transposed: 1)."""
  padding = 1 if transposed else kernel // 2
  taps = (_taps(h, kernel, stride, padding, transposed, count_padding)
          * _taps(w, kernel, stride, padding, transposed, count_padding))
  return taps * c_in * c_out


def spec_forward_macs(model: IFIRNN, height: int, width: int,
                      count_padding: bool = True) -> dict[str, int]:
  """Multiply-adds per frame of each part of the spec's layer table, at the padded size.

  Counts every tap of every kernel (zero padding included unless `count_padding` is
  False; biases, ReLUs and additions excluded), with a transposed conv counted as PyTorch
  runs it: each input pixel times kernel^2 * c_in * c_out. F_B runs once per cell, F_L
  once, and F_R + F_h run N passes (C1HN) or N + 1 (C2HN). The gate is not counted
  (removed at inference).
  """
  h, w = height + (-height) % 4, width + (-width) % 4
  h2, w2, hq, wq = h // 2, w // 2, h // 4, w // 4
  fused = model.n3 + model.nh
  conv = lambda *a, **k: _conv_macs(*a, **k, count_padding=count_padding)  # noqa: E731
  blur_features = (conv(h, w, 5, 3, model.n1) + conv(h, w, 5, model.n1, model.n2, stride=2)
                   + conv(h2, w2, 5, model.n2, model.n3, stride=2))
  fusion = model.num_resblocks * 2 * conv(hq, wq, 3, fused, fused)
  hidden = conv(hq, wq, 3, fused, model.nh) + 3 * conv(hq, wq, 3, model.nh, model.nh)
  latent = (conv(hq, wq, 4, fused, model.n2, stride=2, transposed=True)
            + conv(h2, w2, 4, model.n2, model.n1, stride=2, transposed=True)
            + conv(h, w, 5, model.n1, 3))
  passes = model.iterations + (1 if model.cells == 2 else 0)
  return {"F_B": model.cells * blur_features, "F_R": passes * fusion, "F_h": passes * hidden,
          "F_L": latent}


def spec_gflops(model: IFIRNN, height: int, width: int, count_padding: bool = True) -> float:
  """Forward GFLOP per frame (multiply-add = 2) from the spec's layer table.

  At the defaults and 960x540 this is docs/architecture.md's table (C2H3: 215.1). XLA's cost
  analysis differs: it skips taps that fall on the zero padding (`count_padding=False`
  counts that way), counts bias adds and activations, and counts the layers as executed:
  when the stride-2 convs run as space-to-depth + a 3x3 conv and the transposed convs as
  a 3x3 conv + depth-to-space, their kernels hold structural zero taps that are
  multiplied all the same (+44% on a strided conv, +125% on a transposed one).
  """
  return 2 * sum(spec_forward_macs(model, height, width, count_padding).values()) / 1e9
