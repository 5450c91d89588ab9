"""Both metric writers put the validation example into TensorBoard with its pixels."""

from __future__ import annotations

import io

import numpy as np
import PIL.Image
import pytest

from ifirnn_jax.training import writers


def _images_in_events(logdir) -> dict[str, np.ndarray]:
  """name -> the decoded PNG of every image summary in logdir's event files."""
  import tensorflow as tf
  found = {}
  for path in sorted(logdir.rglob("events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(str(path)):
      for value in event.summary.value:
        if value.HasField("image"):            # tensorboardX: a Summary.Image
          encoded = value.image.encoded_image_string
        elif value.tensor.string_val:          # tf.summary.image: [width, height, png...]
          encoded = value.tensor.string_val[2]
        else:
          continue
        found[value.tag.split("/")[0]] = np.asarray(PIL.Image.open(io.BytesIO(encoded)))
  return found


@pytest.mark.parametrize("use_tensorflow", [False, True], ids=["tensorboardX", "clu"])
def test_written_images_hold_the_examples_pixels(tmp_path, use_tensorflow):
  rng = np.random.default_rng(0)
  example = {"output": rng.integers(0, 256, (12, 16, 3), dtype=np.uint8),
             "blurry": np.full((12, 16, 3), 200, np.uint8)}  # all above 1: no clipping
  writer = writers.create_writer(str(tmp_path), just_logging=False,
                                 use_tensorflow=use_tensorflow)
  writer.write_images(3, {k: v[None] for k, v in example.items()})  # as train.py writes
  writer.flush()
  writer.close()
  found = _images_in_events(tmp_path)
  assert sorted(found) == ["blurry", "output"]
  for name, image in example.items():
    np.testing.assert_array_equal(found[name][..., :3], image)
