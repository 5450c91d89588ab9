"""The numpy training input (no TensorFlow) against the tf.data pipeline."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

import data_trees
from data_pipeline import clip_sampler, input_pipeline, loaders, numpy_pipeline
from data_pipeline.clip_sampler import ClipDraw, ClipSampler
from data_pipeline.errors import DataError
from data_pipeline.layouts import find_sequences


@pytest.fixture(scope="module")
def png_sequences(tmp_path_factory):
  """3 generic sequences of 6 encoded 24x32 PNG frames, blur = 255 - sharp."""
  root = data_trees.generic_tree(tmp_path_factory.mktemp("png"), names=("a", "b", "c"))
  return find_sequences(root, "generic")


@pytest.fixture(scope="module")
def jpeg_sequences(tmp_path_factory):
  """4 DVD sequences of JPEG frames (4:2:0 chroma)."""
  return find_sequences(data_trees.dvd_tree(tmp_path_factory.mktemp("jpg")), "dvd")


def _batches(make, sequences, steps, **kwargs):
  iterator = make(sequences, **kwargs)
  return [next(iterator) for _ in range(steps)]


@pytest.mark.parametrize("kwargs", [
    dict(crop_size=16, augment=True, augment_colour=True),        # square: rotations too
    dict(crop_size=(12, 20), augment=True, cache_frames=True),    # no rotation
    dict(crop_size=16, augment=False, noise_std_sigma=0.0, start_step=5),
    dict(crop_size=8, batch_size=4, process_index=1, process_count=2),
])
def test_numpy_batches_equal_tfdata_batches(png_sequences, kwargs):
  kwargs = dict(dict(batch_size=3, seed=7, clip_length=3), **kwargs)
  tf_batches = _batches(input_pipeline.make_train_iterator, png_sequences, 6, **kwargs)
  np_batches = _batches(numpy_pipeline.make_train_iterator, png_sequences, 6, **kwargs)
  for tf_batch, np_batch in zip(tf_batches, np_batches):
    assert np_batch["sharp"].dtype == np_batch["blur"].dtype == np.float32
    assert np_batch["sharp"].shape == tf_batch["sharp"].shape
    # The frames, and the noise's per-clip std and seed (the noise itself is drawn
    # on the device from them), element for element.
    assert sorted(np_batch) == sorted(tf_batch)
    for key in np_batch:
      assert np_batch[key].dtype == tf_batch[key].dtype
      np.testing.assert_array_equal(np_batch[key], tf_batch[key])
  assert ("noise_key" in np_batch) == (kwargs.get("noise_std_sigma", 2.0) > 0)


def test_jpeg_batches_equal(jpeg_sequences):
  kwargs = dict(batch_size=2, seed=1, clip_length=2, crop_size=16, noise_std_sigma=0.0)
  tf_batch = _batches(input_pipeline.make_train_iterator, jpeg_sequences, 2, **kwargs)
  np_batch = _batches(numpy_pipeline.make_train_iterator, jpeg_sequences, 2, **kwargs)
  for a, b in zip(tf_batch, np_batch):
    np.testing.assert_array_equal(a["blur"], b["blur"])
    np.testing.assert_array_equal(a["sharp"], b["sharp"])


def test_the_batches_vary_and_repeat_for_the_seed(png_sequences):
  kwargs = dict(batch_size=2, seed=3, clip_length=2, crop_size=16)
  first = _batches(numpy_pipeline.make_train_iterator, png_sequences, 3, **kwargs)
  again = _batches(numpy_pipeline.make_train_iterator, png_sequences, 3, **kwargs)
  np.testing.assert_array_equal(first[2]["blur"], again[2]["blur"])
  assert not np.array_equal(first[0]["sharp"], first[1]["sharp"])


def _sampler(**flags):
  flags = dict(dict(augment=True, noise_std_sigma=2.0, augment_colour=True), **flags)
  return ClipSampler([(24, 32), (24, 32), (30, 40)], [6, 6, 9], 3, (16, 16), seed=7, **flags)


def test_the_clip_sampler_stream_is_pinned():
  """Sampler version 2's draws. If this fails, the stream changed (the code, or NumPy's
  Generator): bump clip_sampler.VERSION, so no workdir resumes on it silently."""
  assert clip_sampler.VERSION == 2
  sampler = _sampler()
  assert sampler(0, 0) == ClipDraw(
      sequence=2, start=4, frame=16, y=5, x=20, flips=(0, 1, 1), channels=(2, 1, 0),
      sigma=np.float32(3.5709553), noise_key=(3848424124, 1473775340, 483952157, 3601408595))
  assert sampler(10**6, 3) == ClipDraw(
      sequence=1, start=3, frame=9, y=7, x=15, flips=(0, 1, 0), channels=(0, 2, 1),
      sigma=np.float32(1.0284933), noise_key=(1506052822, 79336468, 3908053558, 2313250697))
  # The flags switch their own fields only: every other draw stays.
  for flags, field, value in ((dict(augment=False), "flips", (0, 0, 0)),
                              (dict(augment_colour=False), "channels", (0, 1, 2)),
                              (dict(noise_std_sigma=0.0), "sigma", 0.0)):
    assert _sampler(**flags)(0, 0) == dataclasses.replace(sampler(0, 0), **{field: value})


@pytest.mark.parametrize("flips", itertools.product((0, 1), repeat=3))
def test_a_draws_flips_are_the_documented_transforms(flips):
  """clip_sampler.ClipDraw's reversals and transpose, as both loaders apply them, are
  the flips of the recipe: left-right, up-down, then 90 degrees counter-clockwise."""
  import tensorflow as tf
  clip = np.arange(2 * 5 * 5 * 3, dtype=np.uint8).reshape(2, 5, 5, 3)
  expected = clip[:, :, ::-1] if flips[0] else clip
  expected = expected[:, ::-1] if flips[1] else expected
  expected = np.rot90(expected, 1, axes=(1, 2)) if flips[2] else expected
  draw = ClipDraw(sequence=0, start=0, frame=0, y=0, x=0, flips=flips, channels=(2, 0, 1),
                  sigma=np.float32(0), noise_key=(0, 0, 0, 0))
  expected = expected[..., [2, 0, 1]]
  np.testing.assert_array_equal(numpy_pipeline.augment_clip(clip, draw), expected)
  arrays = {k: tf.constant(v) for k, v in input_pipeline._draw_arrays(draw).items()}
  np.testing.assert_array_equal(
      input_pipeline._augment(tf.constant(clip), arrays, permute_channels=True), expected)


def test_unreadable_frame_names_the_file(tmp_path):
  root = data_trees.generic_tree(tmp_path, names=("a",))
  sequences = find_sequences(root, "generic")
  iterator = numpy_pipeline.make_train_iterator(sequences, batch_size=2, seed=0,
                                                clip_length=6, crop_size=8)
  sequences[0].sharp_paths[2].unlink()  # After the headers were checked.
  with pytest.raises(DataError, match=r"sharp/2\.png: image file not found"):
    next(iterator)


def test_bad_arguments_raise_data_error(png_sequences):
  with pytest.raises(DataError, match="smaller than"):
    numpy_pipeline.make_train_iterator(png_sequences, batch_size=1, seed=0,
                                       clip_length=2, crop_size=64)
  with pytest.raises(DataError, match="multiple of the process count"):
    numpy_pipeline.make_train_iterator(png_sequences, batch_size=3, seed=0,
                                       process_count=2)


def test_resolve_loader():
  assert loaders.resolve_loader("numpy") == "numpy"
  assert loaders.resolve_loader("auto") == "tfdata"  # TensorFlow is in the test extra.
  with pytest.raises(ValueError, match="loader"):
    loaders.resolve_loader("torch")


def test_bad_loader_value_is_one_error_line(tmp_path):
  import os
  import subprocess
  import sys
  from pathlib import Path
  root = Path(__file__).resolve().parents[1]
  result = subprocess.run(
      [sys.executable, "-m", "ifirnn_jax.train", "--config", "configs/demo.py:tiny",
       "--config.data.loader=torch", "--workdir", str(tmp_path / "w")],
      cwd=root, env=dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(root)),
      capture_output=True, text=True, timeout=300)
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1] == (
      "error: config.data.loader must be 'auto', 'tfdata' or 'numpy', got 'torch'")
