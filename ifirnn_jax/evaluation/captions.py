"""Captions on uint8 images: side-by-side captioned panels and frames captioned in place."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import PIL.Image
import PIL.ImageDraw
import PIL.ImageFont

MIN_PANEL_HEIGHT = 256  # pixels: smaller panels are enlarged (nearest neighbour)


def _font(size: int) -> PIL.ImageFont.ImageFont:
  return PIL.ImageFont.load_default(size=size)


def labelled_panels(panels: Sequence[tuple[str, np.ndarray]], gap: int = 8,
                    min_height: int = MIN_PANEL_HEIGHT) -> np.ndarray:
  """uint8 [H, W, 3] panels side by side, each under its label -> uint8 image.

  Panels lower than `min_height` are enlarged by the smallest integer factor that
  reaches it (each pixel becomes a block, nothing interpolated).
  """
  height = panels[0][1].shape[0]
  scale = max(1, -(-min_height // height))
  font_size = max(16, height * scale // 16)
  strip = int(font_size * 1.8)
  columns = []
  for i, (label, image) in enumerate(panels):
    big = np.repeat(np.repeat(np.asarray(image, np.uint8), scale, axis=0), scale, axis=1)
    canvas = PIL.Image.new("RGB", (big.shape[1], strip), "white")
    PIL.ImageDraw.Draw(canvas).text((4, strip // 2), label, fill="black",
                                    font=_font(font_size), anchor="lm")
    columns.append(np.concatenate([np.asarray(canvas), big], axis=0))
    if i < len(panels) - 1:
      columns.append(np.full((columns[-1].shape[0], gap, 3), 255, np.uint8))
  return np.concatenate(columns, axis=1)


def label_in_place(frame: np.ndarray, label: str) -> np.ndarray:
  """A copy of uint8 [H, W, 3] `frame` with `label` in a dark box at its top-left."""
  height = frame.shape[0]
  font_size = max(8, height // 30)
  image = PIL.Image.fromarray(np.asarray(frame, np.uint8))
  draw = PIL.ImageDraw.Draw(image)
  left, top, right, bottom = draw.textbbox((4, 4), label, font=_font(font_size))
  draw.rectangle((0, 0, right + 4, bottom + 4), fill="black")
  draw.text((4, 4), label, fill="white", font=_font(font_size))
  return np.asarray(image)
