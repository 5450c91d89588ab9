"""The real test clip, tests/data/real_shake.mp4, and facts read from the file itself.

A hand-held phone video with camera shake (Apache-2.0; tests/data/README.md gives its
origin and the command that cut it). Frame count, size and frame rate come from ffmpeg
through imageio-ffmpeg, not from data_pipeline.video, so tests of that reader compare it
with an independent source. A missing clip raises FileNotFoundError: the tests that need
it fail, they never skip.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import imageio_ffmpeg
import numpy as np

PATH = Path(__file__).resolve().parent / "data" / "real_shake.mp4"


@dataclasses.dataclass(frozen=True)
class ClipFacts:
  """What ffmpeg says about the clip: frames, frame size in pixels, frames per second."""

  path: Path
  num_frames: int
  height: int
  width: int
  fps: float


def _require_clip() -> Path:
  if not PATH.is_file():
    raise FileNotFoundError(f"{PATH}: the real test clip is missing; it is part of the "
                            "repository (git checkout -- tests/data)")
  return PATH


@functools.cache
def facts() -> ClipFacts:
  """The clip's facts; counting decodes every frame once (a fraction of a second)."""
  path = _require_clip()
  reader = imageio_ffmpeg.read_frames(str(path))
  try:
    meta = next(reader)
  finally:
    reader.close()
  width, height = meta["size"]
  num_frames, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
  return ClipFacts(path=path, num_frames=num_frames, height=height, width=width,
                   fps=float(meta["fps"]))


def frames(count: int | None = None) -> np.ndarray:
  """The first `count` frames (all when None): uint8 [count, height, width, 3], RGB."""
  clip = facts()
  count = clip.num_frames if count is None else count
  if not 0 < count <= clip.num_frames:
    raise ValueError(f"{clip.path}: asked for {count} frames, the clip has {clip.num_frames}")
  reader = imageio_ffmpeg.read_frames(str(clip.path), pix_fmt="rgb24")
  try:
    next(reader)  # the metadata
    out = [np.frombuffer(next(reader), np.uint8).reshape(clip.height, clip.width, 3)
           for _ in range(count)]
  finally:
    reader.close()
  return np.stack(out)


def step_for(height: int, width: int) -> int:
  """The largest whole-pixel step that keeps at least height x width pixels of a frame."""
  clip = facts()
  step = min(clip.height // height, clip.width // width)
  if step < 1:
    raise ValueError(f"{clip.path}: {clip.width}x{clip.height} is smaller than {width}x{height}")
  return step


def small_frames(count: int, height: int, width: int) -> np.ndarray:
  """The first `count` frames, every step_for(height, width)-th pixel, cropped to
  height x width: uint8 [count, height, width, 3], contiguous."""
  step = step_for(height, width)
  return np.ascontiguousarray(frames(count)[:, ::step, ::step][:, :height, :width])
