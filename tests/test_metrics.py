"""Metrics against scikit-image on real frames, and hand-computed cases."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import real_clip
from ifirnn_jax.evaluation import metrics


@pytest.fixture(scope="module")
def real_pair():
  """3 frames of the real clip, subsampled to 192x320, in [0, 1] and a blurred, noisy copy.

  The copy is left unquantised and partly outside [0, 1], so the metrics' own
  clipping and rounding are exercised.
  """
  target = real_clip.small_frames(3, 192, 320).astype(np.float32) / 255
  rng = np.random.default_rng(0)
  output = gaussian_filter(target, sigma=(0, 1.2, 1.2, 0)) + rng.normal(0, 0.03, target.shape)
  return output.astype(np.float32), target


def _to_uint8(x):
  return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


def test_quantize_clips_and_rounds():
  x = np.array([-0.2, 0.0, 0.4 / 255, 0.6 / 255, 100.4 / 255, 1.0, 1.7], np.float32)
  np.testing.assert_array_equal(metrics.quantize(x), [0, 0, 0, 1, 100, 255, 255])


def test_psnr_matches_skimage_on_real_frames(real_pair):
  output, target = real_pair
  got = np.asarray(metrics.psnr(output, target))
  want = [peak_signal_noise_ratio(_to_uint8(t), _to_uint8(o), data_range=255)
          for o, t in zip(output, target)]
  assert got.shape == (3,)
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
  assert 20 < got.min() < 40  # a plausible degraded frame, not a degenerate case


def test_ssim_matches_skimage_on_real_frames(real_pair):
  output, target = real_pair
  got = np.asarray(metrics.ssim(output, target))
  want = [structural_similarity(_to_uint8(o), _to_uint8(t), gaussian_weights=True,
                                sigma=1.5, use_sample_covariance=False, channel_axis=-1,
                                data_range=255)
          for o, t in zip(output, target)]
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
  assert 0.3 < got.min() < 0.99


def test_psnr_ssim_keep_leading_axes(real_pair):
  output, target = real_pair
  out5 = np.stack([output, output[::-1]])[:, :, :40, :48]  # [B=2, T=3, 40, 48, 3]
  tgt5 = np.stack([target, target[::-1]])[:, :, :40, :48]
  psnr, ssim = metrics.psnr_ssim(out5, tgt5)
  assert psnr.shape == ssim.shape == (2, 3)
  np.testing.assert_allclose(psnr[1], psnr[0][::-1], rtol=1e-6)
  np.testing.assert_allclose(ssim[0], metrics.ssim(out5[0], tgt5[0]), rtol=1e-6)


def test_psnr_known_mse():
  target = np.zeros((4, 4, 3), np.float32)
  output = target.copy()
  output[1, 2, 0] = 10 / 255  # squared error 100 on one of 48 values: MSE = 100 / 48
  want = 10 * np.log10(255**2 / (100 / 48))
  np.testing.assert_allclose(metrics.psnr(output, target), want, rtol=1e-6)


def test_psnr_identical_after_quantisation_is_inf():
  target = np.full((2, 8, 8, 3), 0.5, np.float32)
  assert np.all(np.isinf(metrics.psnr(target, target)))
  # 0.3 levels off rounds back to the same 8-bit value; > 1 clips to 255.
  target = np.round(target * 255) / 255
  assert np.all(np.isinf(metrics.psnr(target + 0.3 / 255, target)))
  assert np.isinf(metrics.psnr(np.full((8, 8, 3), 1.5), np.ones((8, 8, 3))))


def test_ssim_flat_frames_is_luminance_term():
  # Flat frames have zero variances, so SSIM = (2ab + C1) / (a^2 + b^2 + C1).
  a, b = 100.0, 150.0
  c1 = (0.01 * 255) ** 2
  want = (2 * a * b + c1) / (a * a + b * b + c1)
  got = metrics.ssim(np.full((16, 20, 3), a / 255), np.full((16, 20, 3), b / 255))
  np.testing.assert_allclose(got, want, rtol=1e-5)
  assert metrics.ssim(np.full((16, 20, 3), a / 255), np.full((16, 20, 3), a / 255)) == 1.0


def test_metrics_reject_bad_shapes():
  with pytest.raises(ValueError, match="shapes differ"):
    metrics.psnr(np.zeros((8, 8, 3)), np.zeros((8, 9, 3)))
  with pytest.raises(ValueError, match=r"\[..., H, W, 3\]"):
    metrics.psnr(np.zeros((8, 8, 4)), np.zeros((8, 8, 4)))
  with pytest.raises(ValueError, match="at least 11x11"):
    metrics.ssim(np.zeros((10, 32, 3)), np.zeros((10, 32, 3)))


def test_host_metrics_match_skimage_and_the_device_metrics(real_pair):
  output, target = real_pair
  psnr, ssim = metrics.psnr_ssim_host(output, target)
  want_psnr = [peak_signal_noise_ratio(_to_uint8(t), _to_uint8(o), data_range=255)
               for o, t in zip(output, target)]
  want_ssim = [structural_similarity(_to_uint8(o), _to_uint8(t), gaussian_weights=True,
                                     sigma=1.5, use_sample_covariance=False,
                                     channel_axis=-1, data_range=255)
               for o, t in zip(output, target)]
  np.testing.assert_allclose(psnr, want_psnr, rtol=0, atol=1e-9)
  np.testing.assert_allclose(ssim, want_ssim, rtol=0, atol=1e-9)
  # uint8 frames are their values / 255; identical frames: +inf dB, SSIM 1.
  same = metrics.psnr_ssim_host(_to_uint8(target), target)
  assert np.all(np.isinf(same[0])) and np.allclose(same[1], 1)
  np.testing.assert_array_equal(metrics.to_uint8_host(output), _to_uint8(output))
