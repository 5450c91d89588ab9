"""Tests of the tf.data training pipeline (data_pipeline.input_pipeline)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import data_trees
from data_pipeline.errors import DataError
from data_pipeline.input_pipeline import make_train_iterator, steps_per_epoch
from data_pipeline.layouts import Sequence, find_sequences
from ifirnn_jax.training import input_noise

SEQUENCES = 3


@pytest.fixture(scope="module")
def png_sequences(tmp_path_factory):
  """3 generic sequences of 6 encoded 24x32 PNG frames, blur = 255 - sharp."""
  root = data_trees.generic_tree(tmp_path_factory.mktemp("png"),
                                 names=("a", "b", "c"))
  return find_sequences(root, "generic")


@pytest.fixture(scope="module")
def identical_sequences(tmp_path_factory):
  """2 sequences whose blurry frames equal their sharp frames."""
  root = tmp_path_factory.mktemp("identical")
  for number in range(2):
    folder = root / f"s{number}"
    data_trees.write_pair_folders(folder / "blur", folder / "sharp", number,
                                  identical=True)
  return find_sequences(root, "generic")


def _take(iterator, count):
  return [next(iterator) for _ in range(count)]


def _dihedral(clip, hflip, vflip, rotate):
  """The transform the pipeline documents, on [T, h, w, 3] numpy arrays."""
  if hflip:
    clip = clip[:, :, ::-1]
  if vflip:
    clip = clip[:, ::-1]
  if rotate:
    clip = np.rot90(clip, 1, axes=(1, 2))
  return clip


def _identify(sharp_clip, crop):
  """Finds the source window and transform that give an encoded sharp clip.

  Returns (sequence, start, y, x, (hflip, vflip, rotate)); asserts that the
  clip is exactly that transformed window of the source frames.
  """
  clip = np.round(sharp_clip * 255).astype(np.int64)
  np.testing.assert_allclose(clip, sharp_clip * 255, atol=1e-4)  # k / 255.
  sequence, start = divmod(int(clip[0, 0, 0, 2]), 40)
  start //= 6
  y, x = clip[0, ..., 0].min() // 10, clip[0, ..., 1].min() // 8
  source = np.stack([
      data_trees.encoded_frame(sequence, start + t)
      for t in range(clip.shape[0])])[:, y:y + crop[0], x:x + crop[1]]
  rotations = (0, 1) if crop[0] == crop[1] else (0,)
  for flags in itertools.product((0, 1), (0, 1), rotations):
    if np.array_equal(_dihedral(source, *flags), clip):
      return sequence, start, y, x, flags
  raise AssertionError("clip is no flipped/rotated crop of its source")


def test_steps_per_epoch():
  assert steps_per_epoch(
      [Sequence("s", tuple(range(2103)))], 4, 12) == pytest.approx(43.8125)


def test_square_crops_are_shared_exact_windows(png_sequences):
  crop = (16, 16)
  batches = make_train_iterator(
      png_sequences, batch_size=32, seed=3, clip_length=3, crop_size=16,
      noise_std_sigma=0.0)
  seen = []
  for batch in _take(batches, 2):
    assert set(batch) == {"blur", "sharp"}
    for key in batch:
      assert batch[key].dtype == np.float32
      assert batch[key].shape == (32, 3, 16, 16, 3)
    # Blurry frames are 255 - sharp: same window, same transform.
    np.testing.assert_allclose(batch["blur"], 1 - batch["sharp"], atol=1e-6)
    seen += [_identify(clip, crop) for clip in batch["sharp"]]
  sequences, starts, ys, xs, transforms = zip(*seen)
  assert set(sequences) == set(range(SEQUENCES))
  assert set(starts) == {0, 1, 2, 3}  # 6 frames, clips of 3.
  assert set(ys) <= set(range(9)) and set(xs) <= set(range(17))
  assert len(set(ys)) > 4 and len(set(xs)) > 8
  assert len(set(transforms)) == 8  # Every flip/rotation combination.


def test_non_square_crops_skip_rotation(png_sequences):
  batches = make_train_iterator(
      png_sequences, batch_size=32, seed=1, clip_length=2, crop_size=(8, 20),
      noise_std_sigma=0.0)
  batch = next(batches)
  assert batch["sharp"].shape == (32, 2, 8, 20, 3)
  transforms = {_identify(clip, (8, 20))[-1] for clip in batch["sharp"]}
  assert transforms == {(h, v, 0) for h in (0, 1) for v in (0, 1)}
  plain = next(make_train_iterator(
      png_sequences, batch_size=8, seed=1, clip_length=2, crop_size=(8, 20),
      noise_std_sigma=0.0, augment=False))
  assert {_identify(c, (8, 20))[-1] for c in plain["sharp"]} == {(0, 0, 0)}


def test_colour_augmentation_permutes_channels_per_clip(png_sequences):
  def run(**kwargs):
    return next(make_train_iterator(png_sequences, batch_size=48, seed=3, clip_length=2,
                                    crop_size=16, noise_std_sigma=0.0, **kwargs))
  plain, coloured = run(), run(augment_colour=True)
  permutations = set()
  for i in range(48):
    fits = [p for p in itertools.permutations(range(3))
            if all(np.array_equal(coloured[k][i], plain[k][i][..., list(p)])
                   for k in ("blur", "sharp"))]
    assert fits, f"clip {i} is not a channel permutation of the plain clip"
    if len(fits) == 1:
      permutations.add(fits[0])
  # Every order occurs (one per clip, shared by its frames, blur and sharp).
  assert len(permutations) == 6


def test_batches_are_a_function_of_seed_and_step(png_sequences):
  def run(**kwargs):
    return make_train_iterator(png_sequences, batch_size=4, clip_length=3,
                               crop_size=16, **kwargs)
  first = _take(run(seed=7), 3)
  again = _take(run(seed=7), 3)
  resumed = _take(run(seed=7, start_step=2), 1)
  other_seed = _take(run(seed=8), 1)
  for a, b in zip(first, again):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
  for key in first[2]:
    np.testing.assert_array_equal(first[2][key], resumed[0][key])
  assert not np.array_equal(first[0]["sharp"], first[1]["sharp"])
  assert not np.array_equal(first[0]["blur"], other_seed[0]["blur"])


def test_process_slices_concatenate_to_the_global_batch(png_sequences):
  def run(**kwargs):
    return make_train_iterator(png_sequences, batch_size=6, seed=5,
                               clip_length=3, crop_size=(16, 12), **kwargs)
  whole = _take(run(), 2)
  slices = [_take(run(process_index=p, process_count=3, start_step=0), 2)
            for p in range(3)]
  for step in range(2):
    for key in ("blur", "sharp"):
      assert slices[0][step][key].shape[0] == 2
      np.testing.assert_array_equal(
          np.concatenate([s[step][key] for s in slices]), whole[step][key])


def test_cached_frames_give_the_same_batches(tmp_path, png_sequences):
  # JPEG frames (4:2:0 chroma) check tf.io's decoding against read_image.
  jpeg_root = data_trees.dvd_tree(tmp_path, names=("IMG_0003", "j"))
  sources = [png_sequences, find_sequences(jpeg_root, "dvd")]
  for sequences in sources:
    def run(cache):
      return make_train_iterator(sequences, batch_size=4, seed=2,
                                 clip_length=3, crop_size=(20, 12),
                                 cache_frames=cache)
    for a, b in zip(_take(run(False), 2), _take(run(True), 2)):
      for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_noise_only_on_blur_with_per_clip_sigma(identical_sequences):
  clips = 200
  batch = next(make_train_iterator(
      identical_sequences, batch_size=clips, seed=0, clip_length=3,
      crop_size=16, noise_std_sigma=2.0, augment=False))
  np.testing.assert_array_equal(batch["blur"], batch["sharp"])  # noise: on the device
  batch = {k: np.asarray(v) for k, v in input_noise.add_noise(batch).items()}
  sharp = batch["sharp"]
  np.testing.assert_allclose(np.round(sharp * 255), sharp * 255, atol=1e-4)
  noise = (batch["blur"] - sharp) * 255  # In 8-bit units.
  per_clip_std = noise.reshape(clips, -1).std(axis=1)
  # sigma = |s|, s ~ N(0, 2^2): E sigma = 2 sqrt(2 / pi), std 2 sqrt(1 - 2/pi).
  assert per_clip_std.mean() == pytest.approx(2 * math.sqrt(2 / math.pi),
                                              abs=0.35)
  assert per_clip_std.std() == pytest.approx(2 * math.sqrt(1 - 2 / math.pi),
                                             abs=0.3)
  assert abs(noise.mean()) < 0.05
  # Within a clip the noise is N(0, sigma^2): scaled by the clip's sigma it
  # is N(0, 1), whose kurtosis is 3 (a sigma varying inside clips raises it).
  scaled = noise.reshape(clips, -1) / per_clip_std[:, None]
  assert np.mean(scaled ** 4) == pytest.approx(3.0, abs=0.15)
  assert batch["blur"].min() < 0  # Not clipped (frames have 0-valued pixels).
  quiet = next(make_train_iterator(
      identical_sequences, batch_size=4, seed=0, clip_length=3, crop_size=16,
      noise_std_sigma=0.0))
  np.testing.assert_array_equal(quiet["blur"], quiet["sharp"])


def test_bad_arguments_and_sequences(png_sequences, tmp_path):
  def make(sequences=png_sequences, **kwargs):
    arguments = dict(batch_size=4, seed=0, clip_length=3, crop_size=16)
    arguments.update(kwargs)
    return make_train_iterator(sequences, **arguments)
  with pytest.raises(DataError, match="multiple of the process count 3"):
    make(process_count=3)
  with pytest.raises(DataError, match="process index"):
    make(process_index=2, process_count=2)
  with pytest.raises(DataError, match="smaller than the 25x16 crop"):
    make(crop_size=(25, 16))
  with pytest.raises(DataError, match="fewer than the clip length 7"):
    make(clip_length=7)
  with pytest.raises(DataError, match="no training sequences"):
    make(sequences=[])
  unpaired = Sequence("u", png_sequences[0].blur_paths)
  with pytest.raises(DataError, match="u: has no sharp frames"):
    make(sequences=[unpaired])


def test_corrupt_pixel_data_is_named_while_iterating(tmp_path):
  root = tmp_path / "data"
  folder = root / "walk"
  data_trees.write_pair_folders(folder / "blur", folder / "sharp", 0,
                                frames=3)
  noisy = np.random.default_rng(0).integers(0, 256, (24, 32, 3), np.uint8)
  whole = data_trees.save(tmp_path / "noisy.png", noisy).read_bytes()
  bad = folder / "sharp" / "000001.png"
  bad.write_bytes(whole[:len(whole) // 2])  # Valid header, cut pixel data.
  sequences = find_sequences(root, "generic")  # Headers pass.
  batches = make_train_iterator(sequences, batch_size=2, seed=0,
                                clip_length=3, crop_size=8)
  with pytest.raises(DataError, match="cannot decode") as error:
    next(batches)
  assert str(bad) in str(error.value)


def test_pipeline_benchmark_cli(tmp_path, capsys):
  from data_pipeline import pipeline_benchmark
  root = data_trees.gopro_tree(tmp_path / "gopro", frames=4)
  arguments = ["--root", str(root), "--layout", "gopro", "--batch-size", "2",
               "--clip-length", "3", "--crop-size", "16", "--steps", "2",
               "--warmup", "1"]
  assert pipeline_benchmark.main(arguments) == 0
  assert "clips/s" in capsys.readouterr().out
  assert pipeline_benchmark.main(arguments[:-6] + ["--crop-size", "64"]) == 2
  assert "error: sequence GOPR0001" in capsys.readouterr().err
