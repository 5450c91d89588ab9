"""Tests of data_pipeline.image_io, layouts and eval_pipeline on tiny trees."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

import data_trees
from data_pipeline import eval_pipeline, image_io, layouts
from data_pipeline.errors import DataError
from data_pipeline.layouts import Sequence, find_sequences, frames_folder


# ----------------------------------------------------------------- image_io


def test_read_image_rgb_round_trip(tmp_path):
  image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), np.uint8)
  image_io.write_image(tmp_path / "a.png", image)
  read = image_io.read_image(tmp_path / "a.png")
  assert read.dtype == np.uint8 and read.shape == (5, 7, 3)
  np.testing.assert_array_equal(read, image)
  assert image_io.read_image_size(tmp_path / "a.png") == (5, 7)


def test_read_image_converts_gray_and_opaque_alpha(tmp_path):
  gray = np.arange(35, dtype=np.uint8).reshape(5, 7) * 7
  data_trees.save(tmp_path / "gray.png", gray)
  np.testing.assert_array_equal(image_io.read_image(tmp_path / "gray.png"),
                                np.stack([gray] * 3, axis=-1))
  rgb = data_trees.encoded_frame(1, 2, 5, 7)
  rgba = np.concatenate([rgb, np.full((5, 7, 1), 255, np.uint8)], axis=-1)
  data_trees.save(tmp_path / "rgba.png", rgba)
  np.testing.assert_array_equal(image_io.read_image(tmp_path / "rgba.png"),
                                rgb)
  gray_alpha = np.stack([gray, np.full_like(gray, 255)], axis=-1)
  PIL.Image.fromarray(gray_alpha, "LA").save(tmp_path / "la.png")
  np.testing.assert_array_equal(image_io.read_image(tmp_path / "la.png"),
                                np.stack([gray] * 3, axis=-1))


def _bad_images(folder: Path) -> dict[str, tuple[Path, str]]:
  """Files read_image must refuse, with a word the message must contain."""
  rgb = data_trees.encoded_frame(0, 0, 5, 7)
  alpha = np.full((5, 7, 1), 255, np.uint8)
  alpha[2, 3] = 0
  bad = {
      "16-bit": (data_trees.save(folder / "deep.png",
                                 rgb[..., 0].astype(np.uint16) * 257),
                 "8-bit"),
      "transparent": (data_trees.save(
          folder / "alpha.png", np.concatenate([rgb, alpha], -1)),
                      "transparent"),
      "cmyk": (folder / "cmyk.jpg", "CMYK"),
      "missing": (folder / "missing.png", "not found"),
      "empty": (folder / "empty.png", "cannot decode"),
      "not an image": (folder / "text.png", "cannot decode"),
      "truncated": (folder / "truncated.png", "cannot decode"),
  }
  PIL.Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg")
  (folder / "empty.png").write_bytes(b"")
  (folder / "text.png").write_text("hello")
  noisy = np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)
  whole = data_trees.save(folder / "noisy.png", noisy).read_bytes()
  (folder / "truncated.png").write_bytes(whole[:len(whole) // 2])
  return bad


def test_read_image_refuses_bad_files_naming_them(tmp_path):
  for what, (path, word) in _bad_images(tmp_path).items():
    with pytest.raises(DataError, match=word) as error:
      image_io.read_image(path)
    assert str(path) in str(error.value), what


def test_read_image_size_refuses_what_the_header_shows(tmp_path):
  bad = _bad_images(tmp_path)
  for what in ("16-bit", "transparent", "cmyk", "missing", "empty",
               "not an image"):
    path, word = bad[what]
    with pytest.raises(DataError, match=word):
      image_io.read_image_size(path)


def test_write_image_is_atomic_and_validates(tmp_path):
  target = tmp_path / "out.png"
  first = data_trees.encoded_frame(0, 1, 4, 6)
  image_io.write_image(target, first)
  with pytest.raises(DataError, match="uint8"):
    image_io.write_image(target, first.astype(np.float32))
  with pytest.raises(DataError, match="suffix"):
    image_io.write_image(tmp_path / "out.unknownformat", first)
  with pytest.raises(DataError, match="does not exist"):
    image_io.write_image(tmp_path / "nowhere" / "out.png", first)
  np.testing.assert_array_equal(image_io.read_image(target), first)
  assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_to_float():
  values = np.array([[[0, 51, 255]]], np.uint8)
  out = image_io.to_float(values)
  assert out.dtype == np.float32
  np.testing.assert_allclose(out, [[[0.0, 0.2, 1.0]]], atol=1e-7)
  with pytest.raises(DataError):
    image_io.to_float(out)


# ------------------------------------------------------------------ layouts


def _names(sequences):
  return [s.name for s in sequences]


def test_gopro_splits_pairing_and_blur_dir(tmp_path):
  root = data_trees.gopro_tree(tmp_path, train=("GOPR0010", "GOPR0002"))
  train = find_sequences(root, "gopro", "train")
  assert _names(train) == ["GOPR0002", "GOPR0010"]
  assert _names(find_sequences(root, "gopro", "test")) == ["GOPR0003"]
  seq = train[0]
  assert seq.num_frames == 6
  assert seq.frame_names == tuple(f"{i:06d}.png" for i in range(6))
  assert [p.parent.name for p in seq.blur_paths] == ["blur"] * 6
  assert [p.parent.name for p in seq.sharp_paths] == ["sharp"] * 6
  assert [p.name for p in seq.sharp_paths] == list(seq.frame_names)
  gamma = find_sequences(root, "gopro", "train", blur_dir="blur_gamma")
  assert gamma[0].blur_paths[0].parent.name == "blur_gamma"
  assert gamma[0].sharp_paths == seq.sharp_paths
  # The tree's sharp frame 2 of the first written sequence (GOPR0010).
  np.testing.assert_array_equal(
      image_io.read_image(train[1].sharp_paths[2]),
      data_trees.encoded_frame(0, 2))


def test_dvd_test_split_is_the_named_sequences(tmp_path):
  root = data_trees.dvd_tree(tmp_path)
  assert _names(find_sequences(root, "dvd", "test")) == [
      "720p_240fps_2", "IMG_0003"]
  assert _names(find_sequences(root, "dvd", "train")) == ["IMG_0001", "zoo"]
  everything = find_sequences(root / "quantitative_datasets", "dvd", None)
  assert len(everything) == 4
  seq = everything[0]
  assert seq.frame_names[:2] == ("00000.jpg", "00001.jpg")
  assert seq.blur_paths[0].parent.name == "input"
  assert seq.sharp_paths[0].parent.name == "GT"
  assert len(layouts.DVD_TEST_SEQUENCES) == 10


def test_bsd_one_or_several_exposures(tmp_path):
  root = data_trees.bsd_tree(tmp_path)
  several = find_sequences(root, "bsd", "valid")
  assert _names(several) == ["BSD_1ms8ms/000", "BSD_1ms8ms/001",
                             "BSD_2ms16ms/000", "BSD_2ms16ms/001"]
  one = find_sequences(root / "BSD_2ms16ms", "bsd", "test")
  assert _names(one) == ["000", "001"]
  assert one[0].blur_paths[0].parts[-3:] == ("Blur", "RGB", "00000000.png")
  assert one[0].sharp_paths[0].parts[-3:] == ("Sharp", "RGB", "00000000.png")


def test_generic_natural_order_and_split(tmp_path):
  data_trees.generic_tree(tmp_path / "data", frames=12)
  sequences = find_sequences(tmp_path / "data", "generic")
  assert _names(sequences) == ["bike", "walk"]
  assert sequences[0].frame_names == tuple(f"{i}.png" for i in range(12))
  data_trees.generic_tree(tmp_path / "split" / "valid", names=("x",))
  assert _names(find_sequences(tmp_path / "split", "generic", "valid")) == ["x"]


def test_frames_folder_is_unpaired(tmp_path):
  for i in (10, 2, 1):
    data_trees.save(tmp_path / "clip" / f"f{i}.png",
                    data_trees.encoded_frame(0, 0))
  (tmp_path / "clip" / "notes.txt").write_text("not a frame")
  seq = frames_folder(tmp_path / "clip")
  assert seq.name == "clip" and seq.sharp_paths is None
  assert seq.frame_names == ("f1.png", "f2.png", "f10.png")


def _error(match, *args, **kwargs):
  with pytest.raises(DataError, match=match) as error:
    find_sequences(*args, **kwargs)
  return str(error.value)


def test_bad_arguments_and_folders(tmp_path):
  _error("not found", tmp_path / "nowhere", "gopro", "train")
  _error("unknown dataset layout", tmp_path, "vimeo", "train")
  _error("split must be one of", tmp_path, "gopro", "valid")
  _error("no sequences found", tmp_path, "generic")
  root = data_trees.gopro_tree(tmp_path / "g")
  _error("blur_dir", root, "gopro", "train", blur_dir="blurry")
  _error("test split folder", tmp_path / "g" / "train", "gopro", "test")
  shutil.rmtree(root / "test" / "GOPR0003" / "sharp")
  message = _error("not found", root, "gopro", "test")
  assert "GOPR0003" in message
  with pytest.raises(DataError, match="not found"):
    frames_folder(tmp_path / "nothing")
  (tmp_path / "empty_clip").mkdir()
  with pytest.raises(DataError, match="no frames"):
    frames_folder(tmp_path / "empty_clip")


def test_mismatched_names_and_counts(tmp_path):
  root = data_trees.generic_tree(tmp_path, names=("walk",))
  (root / "walk" / "sharp" / "5.png").unlink()
  message = _error("do not match", root, "generic")
  assert "walk" in message and "only in blur: 5.png" in message
  (root / "walk" / "blur" / "5.png").rename(root / "walk" / "blur" / "9.png")
  data_trees.save(root / "walk" / "sharp" / "7.png",
                  data_trees.encoded_frame(0, 0))
  message = _error("do not match", root, "generic")
  assert "only in blur: 9.png" in message and "only in sharp: 7.png" in message


def test_size_mismatches(tmp_path):
  root = data_trees.generic_tree(tmp_path, names=("walk",))
  data_trees.save(root / "walk" / "sharp" / "3.png",
                  data_trees.encoded_frame(0, 3, 24, 30))
  message = _error("24x30", root, "generic")
  assert "walk" in message and "3.png" in message and "24x32" in message
  for kind in ("blur", "sharp"):
    data_trees.save(root / "walk" / kind / "3.png",
                    data_trees.encoded_frame(0, 3, 20, 32))
  message = _error("first frame is 24x32", root, "generic")
  assert "3.png" in message


@pytest.mark.parametrize("what", ["16-bit", "transparent", "empty",
                                  "not an image"])
def test_bad_frames_are_named(tmp_path, what):
  root = data_trees.generic_tree(tmp_path / "data", names=("walk",))
  source, word = _bad_images(tmp_path)[what]
  shutil.copy(source, root / "walk" / "sharp" / "4.png")
  message = _error(word, root, "generic")
  assert str(root / "walk" / "sharp" / "4.png") in message


def test_short_sequence_for_clip_length(tmp_path):
  root = data_trees.generic_tree(tmp_path, names=("walk",))
  assert len(find_sequences(root, "generic", clip_length=6)) == 1
  message = _error("fewer than the clip length 7", root, "generic",
                   clip_length=7)
  assert "walk" in message and "6 frames" in message


# ------------------------------------------------------------ eval_pipeline


def test_eval_frames_stream_in_order(tmp_path):
  (seq,) = find_sequences(data_trees.generic_tree(tmp_path, names=("w",)),
                          "generic")
  frames = list(eval_pipeline.iter_eval_frames(seq))
  assert [f[0] for f in frames] == [f"{i}.png" for i in range(6)]
  for index, (_, blur, sharp) in enumerate(frames):
    assert blur.dtype == sharp.dtype == np.float32
    expected = data_trees.encoded_frame(0, index).astype(np.float32) / 255
    np.testing.assert_allclose(sharp, expected, atol=1e-7)
    np.testing.assert_allclose(blur, 1 - expected, atol=1e-6)
  names, blur, sharp = eval_pipeline.load_sequence(seq, 2, 5)
  assert names == ["2.png", "3.png", "4.png"]
  assert blur.shape == sharp.shape == (3, 24, 32, 3)
  np.testing.assert_array_equal(sharp, np.stack([f[2] for f in frames[2:5]]))
  with pytest.raises(DataError, match="empty"):
    eval_pipeline.load_sequence(seq, 6)


def test_eval_frames_unpaired_and_bad_sizes(tmp_path):
  for i in range(3):
    data_trees.save(tmp_path / "clip" / f"{i}.png",
                    data_trees.encoded_frame(0, i, 8 + 8 * (i == 2), 8))
  seq = Sequence("clip", tuple(sorted((tmp_path / "clip").iterdir())))
  names, blur, sharp = eval_pipeline.load_sequence(seq, 0, 2)
  assert sharp is None and blur.shape == (2, 8, 8, 3)
  streamed = eval_pipeline.iter_eval_frames(seq)
  assert next(streamed)[2] is None
  next(streamed)
  with pytest.raises(DataError, match="2.png"):
    next(streamed)
  with pytest.raises(DataError, match="first frame is 8x8"):
    eval_pipeline.load_sequence(seq)
  paired = Sequence("pair", seq.blur_paths[1:], seq.blur_paths[:2])
  with pytest.raises(DataError, match="sharp frame"):
    list(eval_pipeline.iter_eval_frames(paired))


# ----------------------------------------------------------------- blur and sharp roles

BLUR, SHARP, OTHER = 200, 40, 120  # a distinct constant in each role's frames
# (layout, find_sequences arguments, one sequence's folder, {subfolder: value}), the
# folders written from each layout's description in docs/training.md.
ROLE_TREES = {
    "gopro blur": ("gopro", dict(split="train", blur_dir="blur"), "train/GOPR0001",
                   {"blur": BLUR, "blur_gamma": OTHER, "sharp": SHARP}),
    "gopro blur_gamma": ("gopro", dict(split="train", blur_dir="blur_gamma"),
                         "train/GOPR0001",
                         {"blur": OTHER, "blur_gamma": BLUR, "sharp": SHARP}),
    "dvd": ("dvd", dict(split="train"), "quantitative_datasets/IMG_0001",
            {"input": BLUR, "GT": SHARP}),
    "bsd": ("bsd", dict(split="train"), "train/000",
            {"Blur/RGB": BLUR, "Sharp/RGB": SHARP}),
    "generic": ("generic", {}, "walk", {"blur": BLUR, "sharp": SHARP}),
}


@pytest.mark.parametrize("case", sorted(ROLE_TREES))
def test_blur_and_sharp_come_from_their_folders_by_content(tmp_path, case):
  """The eval and the training loaders give the blurry folder's pixels as 'blur' and the
  sharp folder's as 'sharp', in every layout."""
  from data_pipeline import loaders
  layout, arguments, sequence_folder, values = ROLE_TREES[case]
  for subfolder, value in values.items():
    for index in range(3):
      data_trees.save(tmp_path / sequence_folder / subfolder / f"{index:05d}.png",
                      np.full((8, 8, 3), value, np.uint8))
  sequences = find_sequences(tmp_path, layout, **arguments)
  assert len(sequences) == 1
  _, blur, sharp = eval_pipeline.load_sequence(sequences[0])
  np.testing.assert_allclose(blur, BLUR / 255, rtol=1e-6)
  np.testing.assert_allclose(sharp, SHARP / 255, rtol=1e-6)
  batches = loaders.make_train_iterator(
      "numpy", sequences, batch_size=1, seed=0, clip_length=2, crop_size=4,
      noise_std_sigma=0.0, augment=False, num_workers=1)
  batch = next(batches)
  batches.close()
  np.testing.assert_allclose(batch["blur"], BLUR / 255, rtol=1e-6)
  np.testing.assert_allclose(batch["sharp"], SHARP / 255, rtol=1e-6)
