"""TFDS builder for the DeepVideoDeblurring dataset (Su et al. 2017)."""

from __future__ import annotations

import tensorflow_datasets as tfds
from etils import epath

from data_pipeline import layouts
from data_pipeline.tfds_builders import common


class Dvd(tfds.core.GeneratorBasedBuilder):
  """DVD quantitative paired frames, one example per frame.

  Splits: "test" holds the 10 test sequences of `layouts.DVD_TEST_SEQUENCES`
  (those present in the download), "train" the other 61.
  """

  # tensorflow-datasets 4.9.10 derives the default `code_path` with the
  # `importlib_resources` backport, which it installs only on Python < 3.9.
  code_path = epath.Path(__file__)
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Per-frame examples from the quantitative set."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Download DeepVideoDeblurring_Dataset.zip from the authors' page
  (https://www.cs.ubc.ca/labs/imager/tr/2017/DeepVideoDeblurring/) and unzip
  it; pass the folder holding quantitative_datasets/ (or that folder itself,
  with <seq>/{input,GT}/NNNNN.jpg) as the manual_dir. JPEG frames are stored
  as lossless PNG of their decoded pixels.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=common.frame_features(),
        homepage="https://www.cs.ubc.ca/labs/imager/tr/2017/DeepVideoDeblurring/",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    root = dl_manager.manual_dir
    return {
        split: self._generate_examples(
            layouts.find_sequences(root, "dvd", split))
        for split in ("train", "test")
    }

  def _generate_examples(self, sequences):
    yield from common.generate_frames(sequences)
