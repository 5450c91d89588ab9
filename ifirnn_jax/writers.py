"""Metric writers: clu's (TensorFlow summaries) or, without TensorFlow, tensorboardX's.

Both write TensorBoard event files into the workdir and log the scalars through absl.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from absl import logging


class TensorboardXWriter:
  """The MetricWriter methods train.py uses, on tensorboardX (no TensorFlow)."""

  def __init__(self, logdir: str | None):
    self._writer = None
    if logdir is not None:
      from tensorboardX import SummaryWriter
      self._writer = SummaryWriter(logdir=str(logdir))

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    logging.info("[%d] %s", step, ", ".join(f"{k}={float(v):.6g}"
                                            for k, v in scalars.items()))
    if self._writer is not None:
      for name, value in scalars.items():
        self._writer.add_scalar(name, float(value), step)

  def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    """images: name -> [N, H, W, C], uint8 (0..255) or float in [0, 1] (clipped to it),
    as clu's writer takes them; the first image is written."""
    if self._writer is not None:
      for name, value in images.items():
        image = np.asarray(value)[0]
        if image.dtype != np.uint8:  # tensorboardX scales floats by 255, uint8 not
          image = np.clip(image.astype(np.float32), 0, 1)
        self._writer.add_image(name, image, step, dataformats="HWC")

  def write_hparams(self, hparams: Mapping[str, Any]) -> None:
    logging.info("Hyperparameters: %s", dict(hparams))
    if self._writer is not None:
      self._writer.add_text("hparams", repr(dict(hparams)), 0)

  def flush(self) -> None:
    if self._writer is not None:
      self._writer.flush()

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()


def create_writer(workdir: str, *, just_logging: bool, use_tensorflow: bool):
  """clu's default writer when `use_tensorflow`, else a TensorboardXWriter."""
  if use_tensorflow:
    from clu import metric_writers
    return metric_writers.create_default_writer(workdir, just_logging=just_logging)
  return TensorboardXWriter(None if just_logging else workdir)
