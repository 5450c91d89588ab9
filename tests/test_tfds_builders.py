"""Builds the GOPRO and DVD TFDS datasets from tiny trees in tmp folders."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow_datasets as tfds

import data_trees
from data_pipeline import image_io, tfds_builders
from data_pipeline.errors import DataError


def _prepare(builder, manual_dir):
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  return builder


def _examples(builder, split):
  return sorted(tfds.as_numpy(builder.as_dataset(split=split)),
                key=lambda e: (e["sequence"], e["frame_index"]))


def test_gopro_builder_per_frame_examples(tmp_path):
  manual = data_trees.gopro_tree(tmp_path / "GOPRO_Large", frames=3)
  builder = _prepare(
      tfds_builders.Gopro(config="blur_gamma", data_dir=tmp_path / "tfds"),
      manual)
  assert builder.info.name == "gopro"
  assert builder.info.splits["train"].num_examples == 6
  assert builder.info.splits["test"].num_examples == 3
  test = _examples(builder, "test")
  assert [(e["sequence"], e["frame_index"], e["frame_name"]) for e in test] == [
      (b"GOPR0003", i, f"{i:06d}.png".encode()) for i in range(3)]
  for example in test:
    sharp = data_trees.encoded_frame(0, int(example["frame_index"]))
    np.testing.assert_array_equal(example["sharp"], sharp)
    np.testing.assert_array_equal(example["blur"], sharp)  # blur_gamma tree.
  blur = _prepare(tfds_builders.Gopro(config="blur",
                                      data_dir=tmp_path / "tfds"), manual)
  first = _examples(blur, "train")[0]
  assert first["sequence"] == b"GOPR0001"
  np.testing.assert_array_equal(first["blur"],
                                255 - data_trees.encoded_frame(0, 0))


def test_dvd_builder_splits_and_pixels(tmp_path):
  manual = data_trees.dvd_tree(
      tmp_path / "dvd", names=("IMG_0030", "IMG_0100"), frames=2)
  builder = _prepare(tfds_builders.Dvd(data_dir=tmp_path / "tfds"), manual)
  train, test = _examples(builder, "train"), _examples(builder, "test")
  assert {e["sequence"] for e in train} == {b"IMG_0100"}
  assert [e["frame_name"] for e in test] == [b"00000.jpg", b"00001.jpg"]
  path = manual / "quantitative_datasets" / "IMG_0030" / "input" / "00001.jpg"
  np.testing.assert_array_equal(test[1]["blur"], image_io.read_image(path))


def test_builder_reports_bad_manual_dir(tmp_path):
  wrong = tmp_path / "download"  # Not empty, but not GOPRO_Large either.
  data_trees.generic_tree(wrong, names=("walk",), frames=2)
  builder = tfds_builders.Gopro(config="blur", data_dir=tmp_path / "tfds")
  with pytest.raises(DataError, match="gopro train split folder"):
    _prepare(builder, wrong)
