"""Image quality metrics of the paper's tables: PSNR and SSIM on 8-bit frames.

What is measured (docs/training.md "Metrics"):
  * Both frames are clipped to [0, 1] and quantised to 8 bits (rounded), as a saved
    frame would be; the target is 8-bit data already, so quantising it is a no-op.
  * PSNR: RGB, peak 255, no border crop, one value per frame. Identical frames give
    +inf (as scikit-image does); average PSNR over frames where that can happen.
  * SSIM: Wang et al. 2004 with an 11x11 Gaussian window (sigma 1.5, truncated at
    3.5 sigma), K1 0.01, K2 0.03, data range 255, population covariances, per RGB
    channel then averaged over the channels. Like scikit-image's
    `structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, channel_axis=-1, data_range=255)`, the SSIM map is
    averaged only where the window lies inside the frame (a 5-pixel border is
    dropped), which is a "valid" filtering: no padding mode is involved.

`psnr_ssim_host`, `quantize_host`: the same metrics of frames already on the host, in
numpy (float64, scipy's separable filter), so that scoring a frame the model returned
sends nothing back to the device.

dm-pix's `ssim` computes the same quantity but filters row by row with
`jnp.convolve`, several times slower on CPU; here the separable Gaussian is a sum of
11 shifted slices, which XLA fuses, and the statistics are taken about the middle of
the data range so float32 keeps about 1e-7 agreement with scikit-image's float64.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

PEAK = 255.0
SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # scikit-image's choice for gaussian_weights=True: an 11-tap window
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def quantize(x: Array) -> Array:
  """[0, 1] float -> the 8-bit value a saved frame would hold, as float32 in [0, 255].

  Clips to [0, 1], scales by 255 and rounds to the nearest integer (ties to even, as
  `numpy.round`).
  """
  return jnp.round(jnp.clip(jnp.asarray(x, jnp.float32), 0.0, 1.0) * PEAK)


def _check_pair(output: Array, target: Array, min_size: int = 1) -> None:
  if output.shape != target.shape:
    raise ValueError(f"output and target shapes differ: {output.shape} vs {target.shape}")
  if output.ndim < 3 or output.shape[-1] != 3:
    raise ValueError(f"frames must be [..., H, W, 3], got shape {output.shape}")
  if min(output.shape[-3:-1]) < min_size:
    raise ValueError(f"frames must be at least {min_size}x{min_size} pixels, "
                     f"got {output.shape[-3]}x{output.shape[-2]}")


def psnr(output: Array, target: Array) -> Array:
  """PSNR in dB of 8-bit RGB frames, peak 255, no border crop.

  Args:
    output: [..., H, W, 3] float in [0, 1] (clipped and quantised here).
    target: [..., H, W, 3] float in [0, 1] (8-bit data; quantised too).

  Returns:
    [...] float32, one value per frame; +inf where the quantised frames are identical.
  """
  output, target = jnp.asarray(output), jnp.asarray(target)
  _check_pair(output, target)
  return _psnr(output, target)


@jax.jit
def _psnr(output: Array, target: Array) -> Array:
  mse = jnp.mean(jnp.square(quantize(output) - quantize(target)), axis=(-3, -2, -1))
  return 10.0 * jnp.log10(PEAK**2 / mse)


def _gaussian_taps() -> np.ndarray:
  radius = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)  # 5, as scipy.ndimage computes it
  offsets = np.arange(-radius, radius + 1, dtype=np.float64)
  taps = np.exp(-0.5 * (offsets / SSIM_SIGMA) ** 2)
  return taps / taps.sum()


SSIM_WINDOW = len(_gaussian_taps())  # 11


def _valid_filter(x: Array, taps: np.ndarray, axis: int) -> Array:
  """1-D correlation with `taps` along `axis`, keeping only the fully covered outputs."""
  n = x.shape[axis] - len(taps) + 1
  out = jnp.zeros((), x.dtype)
  for k, tap in enumerate(taps):
    out = out + float(tap) * jax.lax.slice_in_dim(x, k, k + n, axis=axis)
  return out


def ssim(output: Array, target: Array) -> Array:
  """SSIM of 8-bit RGB frames, per channel then averaged (see module docstring).

  Args:
    output: [..., H, W, 3] float in [0, 1] (clipped and quantised here), H, W >= 11.
    target: [..., H, W, 3] float in [0, 1] (8-bit data; quantised too).

  Returns:
    [...] float32, one value per frame, in [-1, 1] (1 for identical frames).
  """
  output, target = jnp.asarray(output), jnp.asarray(target)
  _check_pair(output, target, min_size=SSIM_WINDOW)
  return _ssim(output, target)


@jax.jit
def _ssim(output: Array, target: Array) -> Array:
  # Variances and covariances are invariant to a shift; centring the data halves the
  # magnitude of E[x^2] and so the float32 cancellation error of E[x^2] - E[x]^2.
  centre = PEAK / 2
  x = quantize(output) - centre
  y = quantize(target) - centre
  taps = _gaussian_taps()
  stats = jnp.stack([x, y, x * x, y * y, x * y])
  stats = _valid_filter(_valid_filter(stats, taps, axis=-3), taps, axis=-2)
  mu_x, mu_y, e_xx, e_yy, e_xy = stats
  var_x = e_xx - mu_x * mu_x
  var_y = e_yy - mu_y * mu_y
  cov_xy = e_xy - mu_x * mu_y
  mu_x, mu_y = mu_x + centre, mu_y + centre
  c1 = (SSIM_K1 * PEAK) ** 2
  c2 = (SSIM_K2 * PEAK) ** 2
  ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)
              / ((mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)))
  # Mean over H, W and the channels = mean over channels of the per-channel means.
  return jnp.mean(ssim_map, axis=(-3, -2, -1))


def psnr_ssim(output: Array, target: Array) -> tuple[Array, Array]:
  """(psnr, ssim), each [...] float32, of [..., H, W, 3] frames in [0, 1]."""
  output, target = jnp.asarray(output), jnp.asarray(target)
  _check_pair(output, target, min_size=SSIM_WINDOW)
  return _psnr(output, target), _ssim(output, target)


# ------------------------------------------------------------------ host (numpy)
def quantize_host(x: np.ndarray) -> np.ndarray:
  """`quantize` in numpy: float [0, 1] -> the 8-bit value, float32 in [0, 255]."""
  return np.round(np.clip(np.asarray(x, np.float32), 0.0, 1.0) * np.float32(PEAK))


def to_uint8_host(x: np.ndarray) -> np.ndarray:
  """float [0, 1] -> uint8, clipped and rounded as `quantize`."""
  return quantize_host(x).astype(np.uint8)


def psnr_ssim_host(output: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """`psnr_ssim` of host frames in numpy: (psnr, ssim), each [...] float64.

  output, target: [..., H, W, 3] float in [0, 1] or uint8 (taken as k / 255).
  """
  from scipy import ndimage
  x, y = (np.asarray(v, np.float64) if np.asarray(v).dtype == np.uint8
          else quantize_host(v).astype(np.float64) for v in (output, target))
  _check_pair(x, y, min_size=SSIM_WINDOW)
  mse = np.mean(np.square(x - y), axis=(-3, -2, -1))
  with np.errstate(divide="ignore"):
    psnr_db = 10.0 * np.log10(PEAK**2 / mse)
  taps = _gaussian_taps()
  radius = len(taps) // 2
  stats = np.stack([x, y, x * x, y * y, x * y])
  for axis in (-3, -2):
    stats = ndimage.correlate1d(stats, taps, axis=axis, mode="constant")
    stats = np.take(stats, range(radius, stats.shape[axis] - radius), axis=axis)
  mu_x, mu_y, e_xx, e_yy, e_xy = stats
  var_x, var_y, cov_xy = e_xx - mu_x * mu_x, e_yy - mu_y * mu_y, e_xy - mu_x * mu_y
  c1, c2 = (SSIM_K1 * PEAK) ** 2, (SSIM_K2 * PEAK) ** 2
  ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)
              / ((mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)))
  return psnr_db, np.mean(ssim_map, axis=(-3, -2, -1))
