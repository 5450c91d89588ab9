"""The random choices of the training clips: drawn once, in numpy, for both loaders.

`ClipSampler` draws, for global batch element `index` at `step`, the clip (its
sequence and first frame), the crop corner, the flips, the channel order, the noise
std and the noise's key from NumPy's own generator, seeded by (seed, step, index)
alone: `np.random.SeedSequence(seed, spawn_key=(step, index))` (the child stream
`SeedSequence.spawn` would give) into a PCG64 `Generator`. So batch k is a pure
function of (seed, k) (a restart at step k sees what an uninterrupted run sees), and
process p builds its slice of a global batch from its own indices. Both loaders
consume these draws (numpy_pipeline directly, input_pipeline through tf.data), and
read, crop and augment the frames as `ClipDraw` defines, so their batches are equal
by construction.

Every draw is made for every clip, in a fixed order, whatever the flags: turning
`augment`, `augment_colour` or the noise off changes only the fields it switches.
`VERSION` names this stream of draws; train records it in the workdir, so a run is
never resumed on another stream without a word. Change it with any change of what is
drawn or how (the stream test in tests/test_numpy_pipeline.py pins a few draws).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence as SequenceType

import numpy as np

from data_pipeline.errors import DataError
from data_pipeline.layouts import Sequence, validate_sequence

# 1: TensorFlow's stateless Philox ops (fold_in, split); 2: this module's draws.
VERSION = 2


@dataclasses.dataclass(frozen=True)
class ClipDraw:
  """The random choices of one clip, and the augmentation they define.

  sequence (index into the sequence list), start (its first frame), frame (that frame's
  index in all sequences' frames laid end to end), y, x (crop corner), flips
  (horizontal, vertical, rotate by 90 degrees counter-clockwise; 0 or 1, applied in
  that order), channels (the RGB order), sigma (noise std in 8-bit units), noise_key
  (four uint32 words: the key of the clip's per-pixel noise, drawn on the device).
  """
  sequence: int
  start: int
  frame: int
  y: int
  x: int
  flips: tuple[int, int, int]
  channels: tuple[int, int, int]
  sigma: np.float32
  noise_key: tuple[int, int, int, int]

  # The flips of a clip [N, h, w, C] as two steps numpy and TensorFlow both have:
  # reverse the axes where `reverse` is true, then swap rows and columns if
  # `transpose`. The 90-degree counter-clockwise rotation is a reversal of the columns
  # then a transpose (np.rot90(x, 1, axes=(1, 2)) == np.swapaxes(x[:, :, ::-1], 1, 2)),
  # and reversals commute: rows reversed if vertical, columns if horizontal xor rotate.
  @property
  def reverse(self) -> tuple[bool, bool, bool, bool]:
    """Axes of [N, h, w, C] to reverse."""
    horizontal, vertical, rotate = self.flips
    return (False, bool(vertical), horizontal != rotate, False)

  @property
  def transpose(self) -> bool:
    """Whether rows and columns are swapped after the reversals."""
    return bool(self.flips[2])


class ClipSampler:
  """The random choices of a clip, a pure function of (seed, step, index)."""

  def __init__(self, sizes: list[tuple[int, int]], lengths: list[int], clip_length: int,
               crop: tuple[int, int], seed: int, augment: bool, noise_std_sigma: float,
               augment_colour: bool = False):
    self.num_starts = np.array(lengths, np.int64) - clip_length + 1
    self.clip_end = np.cumsum(self.num_starts)
    self.total_clips = int(self.num_starts.sum())
    self.first_frame = np.cumsum([0] + list(lengths[:-1])).astype(np.int64)
    self.sizes = sizes
    self.clip_length = clip_length
    self.crop = crop
    self.seed = int(seed) % 2**64  # SeedSequence takes non-negative entropy
    self.augment = augment
    self.augment_colour = augment_colour
    self.noise_std_sigma = float(noise_std_sigma)

  def __call__(self, step: int, index: int) -> ClipDraw:
    """The clip of global batch element `index` at `step`."""
    rng = np.random.Generator(np.random.PCG64(
        np.random.SeedSequence(self.seed, spawn_key=(int(step), int(index)))))
    # The order of the draws is part of VERSION.
    clip = int(rng.integers(self.total_clips))
    sequence = int(np.searchsorted(self.clip_end, clip, side="right"))
    start = clip - int(self.clip_end[sequence] - self.num_starts[sequence])
    (height, width), (crop_h, crop_w) = self.sizes[sequence], self.crop
    y = int(rng.integers(height - crop_h + 1))
    x = int(rng.integers(width - crop_w + 1))
    flips = [int(f) for f in rng.integers(2, size=3)]
    channels = tuple(int(c) for c in rng.permutation(3))
    normal = rng.standard_normal()
    noise_key = tuple(int(w) for w in rng.integers(2**32, size=4, dtype=np.uint32))
    if not self.augment:
      flips = [0, 0, 0]
    elif crop_h != crop_w:
      flips[2] = 0  # a rotation would change the shape of a non-square crop
    return ClipDraw(
        sequence=sequence, start=start, frame=int(self.first_frame[sequence]) + start,
        y=y, x=x, flips=tuple(flips),
        channels=channels if self.augment_colour else (0, 1, 2),
        sigma=np.float32(self.noise_std_sigma * abs(normal)), noise_key=noise_key)

  def draws(self, step: int, indices: range) -> list[ClipDraw]:
    """The clips of the global batch elements `indices` at `step`."""
    return [self(step, index) for index in indices]


# ----------------------------------------------------------------- checks of both loaders
def crop_shape(crop_size: int | tuple[int, int]) -> tuple[int, int]:
  """(height, width) of a crop given as an int (square) or a pair."""
  if isinstance(crop_size, (int, np.integer)):
    crop_size = (crop_size, crop_size)
  height, width = (int(v) for v in crop_size)
  if height < 1 or width < 1:
    raise DataError(f"crop size must be positive, got {crop_size}")
  return height, width


def check_train_inputs(sequences: SequenceType[Sequence], batch_size: int,
                       clip_length: int, crop: tuple[int, int], start_step: int,
                       process_index: int, process_count: int,
                       noise_std_sigma: float) -> list[tuple[int, int]]:
  """Raises DataError for bad arguments or sequences; returns the frame sizes."""
  if not sequences:
    raise DataError("no training sequences given")
  if batch_size < 1 or process_count < 1 or batch_size % process_count:
    raise DataError(f"batch size {batch_size} must be a positive multiple of the "
                    f"process count {process_count}")
  if not 0 <= process_index < process_count:
    raise DataError(f"process index {process_index} outside [0, {process_count})")
  if clip_length < 1 or start_step < 0 or noise_std_sigma < 0:
    raise DataError(f"need clip_length >= 1, start_step >= 0, noise_std_sigma >= 0; "
                    f"got {clip_length}, {start_step}, {noise_std_sigma}")
  sizes = []
  for sequence in sequences:
    if sequence.sharp_paths is None:
      raise DataError(f"sequence {sequence.name}: has no sharp frames; training needs "
                      "paired data")
    size = validate_sequence(sequence, clip_length)
    if size[0] < crop[0] or size[1] < crop[1]:
      raise DataError(f"sequence {sequence.name}: frames are {size[0]}x{size[1]} (HxW), "
                      f"smaller than the {crop[0]}x{crop[1]} crop")
    sizes.append(size)
  return sizes
