"""Whole-frame reading of sequences for evaluation and inference (no TensorFlow).

    for name, blur, sharp in iter_eval_frames(sequence):   # one frame at a time
      ...                                                  # float32 [H, W, 3]
    names, blur, sharp = load_sequence(sequence, start=0, stop=20)  # [T, H, W, 3]

Frames are read with `image_io.read_image` and returned as float32 in [0, 1],
in the sequence's order, whole (no crop, no noise, no augmentation).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator

import numpy as np

from data_pipeline import image_io
from data_pipeline.errors import DataError
from data_pipeline.layouts import Sequence

FramePair = tuple[str, np.ndarray, np.ndarray | None]


def _read_frame(sequence: Sequence, index: int) -> FramePair:
  """Frame `index` as (file name, blur, sharp or None), float32 [H, W, 3]."""
  blur_path = sequence.blur_paths[index]
  blur = image_io.read_image(blur_path)
  sharp = None
  if sequence.sharp_paths is not None:
    sharp_path = sequence.sharp_paths[index]
    sharp = image_io.read_image(sharp_path)
    if sharp.shape != blur.shape:
      raise DataError(
          f"sequence {sequence.name}: sharp frame {sharp_path} is "
          f"{sharp.shape[0]}x{sharp.shape[1]} (HxW) but its blurry frame "
          f"{blur_path} is {blur.shape[0]}x{blur.shape[1]}")
    sharp = image_io.to_float(sharp)
  return blur_path.name, image_io.to_float(blur), sharp


def _check_same_size(sequence: Sequence, index: int, shape: tuple[int, ...],
                     first_shape: tuple[int, ...]) -> None:
  if shape != first_shape:
    raise DataError(
        f"sequence {sequence.name}: frame {sequence.blur_paths[index]} is "
        f"{shape[0]}x{shape[1]} (HxW) but the first frame is "
        f"{first_shape[0]}x{first_shape[1]}")


def iter_eval_frames(sequence: Sequence) -> Iterator[FramePair]:
  """Streams a sequence frame by frame, in order.

  The next frame is decoded in a background thread while the caller works on
  the current one; at most two frames are held, whatever the length.

  Yields:
    (frame file name, blur float32 [H, W, 3] in [0, 1], sharp float32
    [H, W, 3] in [0, 1] or None when the sequence has no ground truth).

  Raises:
    DataError: naming the file, for unreadable frames or frames whose size
      differs from the first frame's or from their blurry/sharp partner's.
  """
  num_frames = sequence.num_frames
  if num_frames == 0:
    raise DataError(f"sequence {sequence.name}: has no frames")
  with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
    pending = pool.submit(_read_frame, sequence, 0)
    first_shape = None
    for index in range(num_frames):
      frame = pending.result()
      if index + 1 < num_frames:
        pending = pool.submit(_read_frame, sequence, index + 1)
      first_shape = first_shape or frame[1].shape
      _check_same_size(sequence, index, frame[1].shape, first_shape)
      yield frame


def load_sequence(
    sequence: Sequence, start: int = 0, stop: int | None = None
) -> tuple[list[str], np.ndarray, np.ndarray | None]:
  """Loads frames [start, stop) of a sequence into memory.

  Returns:
    (frame file names, blur float32 [T, H, W, 3] in [0, 1], sharp float32
    [T, H, W, 3] or None when the sequence has no ground truth).

  Raises:
    DataError: for an empty range, unreadable frames or mismatched sizes.
  """
  indices = range(sequence.num_frames)[start:stop]
  if not indices:
    raise DataError(
        f"sequence {sequence.name}: frame range [{start}, {stop}) is empty "
        f"(the sequence has {sequence.num_frames} frames)")
  frames = [_read_frame(sequence, index) for index in indices]
  for index, frame in zip(indices, frames):
    _check_same_size(sequence, index, frame[1].shape, frames[0][1].shape)
  names = [frame[0] for frame in frames]
  blur = np.stack([frame[1] for frame in frames])
  sharp = None
  if sequence.sharp_paths is not None:
    sharp = np.stack([frame[2] for frame in frames])
  return names, blur, sharp
