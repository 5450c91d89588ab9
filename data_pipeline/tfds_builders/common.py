"""What the GOPRO and DVD builders share: features and example generation."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

from data_pipeline import image_io
from data_pipeline.layouts import Sequence


def frame_features() -> tfds.features.FeaturesDict:
  """One paired frame: its sequence, position and both images."""
  image = tfds.features.Image(shape=(None, None, 3), encoding_format="png")
  return tfds.features.FeaturesDict({
      "sequence": tfds.features.Text(),
      "frame_index": tfds.features.Scalar(dtype=np.int32),
      "frame_name": tfds.features.Text(),
      "blur": image,
      "sharp": image,
  })


def generate_frames(sequences: list[Sequence]) -> Iterator[tuple[str, dict]]:
  """(key, example) for every frame of `sequences`, read by `read_image`."""
  for sequence in sequences:
    for index, (blur_path, sharp_path) in enumerate(
        zip(sequence.blur_paths, sequence.sharp_paths)):
      yield f"{sequence.name}/{blur_path.name}", {
          "sequence": sequence.name,
          "frame_index": index,
          "frame_name": blur_path.name,
          "blur": image_io.read_image(blur_path),
          "sharp": image_io.read_image(sharp_path),
      }
