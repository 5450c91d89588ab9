"""TFDS builder for GOPRO_Large (Nah et al. 2017), read from a manual download."""

from __future__ import annotations

import tensorflow_datasets as tfds
from etils import epath

from data_pipeline import layouts
from data_pipeline.tfds_builders import common


class Gopro(tfds.core.GeneratorBasedBuilder):
  """GOPRO_Large paired blurry/sharp frames, one example per frame.

  Configs: "blur" (blur averaged on the stored frames) and "blur_gamma"
  (averaged in the gamma-linearised domain; the paper's choice).
  """

  # tensorflow-datasets 4.9.10 derives the default `code_path` with the
  # `importlib_resources` backport, which it installs only on Python < 3.9.
  code_path = epath.Path(__file__)
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Per-frame examples from GOPRO_Large."}
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(name=blur_dir, description=(
          f"Blurry frames from the {blur_dir!r} folders."))
      for blur_dir in layouts.GOPRO_BLUR_DIRS
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Download GOPRO_Large.zip from https://seungjunnah.github.io/Datasets/gopro
  and unzip it; pass the GOPRO_Large folder (holding train/ and test/, each
  with <seq>/{blur,blur_gamma,sharp}/NNNNNN.png) as the manual_dir.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=common.frame_features(),
        homepage="https://seungjunnah.github.io/Datasets/gopro",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    root = dl_manager.manual_dir
    return {
        split: self._generate_examples(layouts.find_sequences(
            root, "gopro", split, blur_dir=self.builder_config.name))
        for split in ("train", "test")
    }

  def _generate_examples(self, sequences):
    yield from common.generate_frames(sequences)
