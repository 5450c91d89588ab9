"""The Python API (`model.deblur`, `model.step`) converts integer images as documented
and refuses input it would otherwise compute garbage from."""

import jax
import numpy as np
import pytest

import ifirnn_jax as ifr
from tests.tiny_models import tiny_params

MODEL = ifr.IFIRNN(cells=1, iterations=2, n1=4, n2=6, n3=8, nh=4, num_resblocks=1)
PARAMS = tiny_params(MODEL, seed=1)


def _uint8(shape=(3, 8, 12, 3), seed=0):
  return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_uint8_and_uint16_are_scaled_to_unit_range():
  video = _uint8()
  expected = np.asarray(MODEL.deblur(PARAMS, video.astype(np.float32) / 255))
  np.testing.assert_allclose(np.asarray(MODEL.deblur(PARAMS, video)), expected, atol=1e-5)
  wide = video.astype(np.uint16) * 257  # 255 -> 65535: the same images in 16 bits
  np.testing.assert_allclose(np.asarray(MODEL.deblur(PARAMS, wide)), expected, atol=1e-5)
  frame = video[0]
  out, _ = MODEL.step(PARAMS, frame, MODEL.initial_state(8, 12))
  np.testing.assert_allclose(np.asarray(out), expected[0], atol=1e-5)
  # As 0..255 floats, the output would be ~255 times larger: not what came out.
  assert np.abs(expected).max() < 5


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint32, np.bool_, np.complex64])
def test_other_dtypes_are_refused(dtype):
  with pytest.raises(ValueError, match=f"video has dtype {np.dtype(dtype)}.*uint8"):
    MODEL.deblur(PARAMS, _uint8().astype(dtype))
  with pytest.raises(ValueError, match=f"frame has dtype {np.dtype(dtype)}"):
    MODEL.step(PARAMS, _uint8()[0].astype(dtype), MODEL.initial_state(8, 12))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused(bad):
  video = _uint8().astype(np.float32) / 255
  video[1, 2, 3, 0] = bad
  with pytest.raises(ValueError, match="video holds 1 NaN or infinite values"):
    MODEL.deblur(PARAMS, video)
  with pytest.raises(ValueError, match="frame holds 1 NaN or infinite values"):
    MODEL.step(PARAMS, jax.numpy.asarray(video[1]), MODEL.initial_state(8, 12))


@pytest.mark.parametrize("low,high", [(0.0, 255.0), (-0.5, 1.0), (0.0, 1.001)])
def test_floats_outside_unit_range_are_refused(low, high):
  video = np.random.default_rng(0).uniform(size=(2, 8, 12, 3)).astype(np.float32)
  video[0, 0, 0, 0], video[1, 0, 0, 0] = low, high
  with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
    MODEL.deblur(PARAMS, video)
  with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
    MODEL.step(PARAMS, video[1] if high > 1 else video[0], MODEL.initial_state(8, 12))


def test_unit_range_floats_of_any_precision_are_accepted():
  video = _uint8().astype(np.float64) / 255
  video[0, 0, 0] = (0.0, 1.0, 0.5)
  out32 = np.asarray(MODEL.deblur(PARAMS, video.astype(np.float32)))
  np.testing.assert_array_equal(np.asarray(MODEL.deblur(PARAMS, video)), out32)
  assert np.abs(np.asarray(MODEL.deblur(PARAMS, video.astype(np.float16))) - out32).max() < 0.01
