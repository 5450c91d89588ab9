"""The random choices of a training clip in numpy, equal to the tf.data pipeline's.

`ClipSampler` draws, for global batch element `index` at `step`, the clip, its crop
corner, flips, channel order and noise from the counter-based Philox-4x32-10 generator
keyed by (seed, step, index), with the same derivation of keys and the same conversions
from random bits to numbers as TensorFlow's stateless random ops with alg="philox"
(`tf.random.experimental.stateless_fold_in`, `stateless_split`, `stateless_uniform`,
`stateless_normal`). So it gives exactly the draws of input_pipeline's tf.data sampler
without importing TensorFlow, and both loaders yield the same batch at step k.

Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011):
a 128-bit counter (four uint32 words) and a 64-bit key (two words) give four uint32
words; counters advance by one per block of four words. TensorFlow's conventions:
  * a seed [s0, s1] (int64) becomes counter (s0, s1) as two uint64, which one Philox
    block under a fixed key scrambles: words 0-1 of the block form the key, words 2-3
    the high half of the counter, whose low half is 0;
  * uint64 values join two words as low | high << 32;
  * an int64 in [lo, hi): lo + (64 random bits) mod (hi - lo);
  * a float32 in [0, 1): the 23 low bits of a word as the mantissa of [1, 2), minus 1;
  * a normal float32: Box-Muller on consecutive word pairs (sin first, then cos).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence as SequenceType

import numpy as np

from data_pipeline.errors import DataError
from data_pipeline.layouts import Sequence, validate_sequence

_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)  # Philox multipliers.
_W0, _W1 = np.uint32(0x9E3779B9), np.uint32(0xBB67AE85)  # Key increments per round.
_LOW32 = np.uint64(0xFFFFFFFF)
_SCRAMBLE_KEY = 0x02461E293EC8F720  # TensorFlow's key for scrambling seeds.
NUM_KEYS = 6  # clip, crop y, crop x, flips, noise sigma, noise.


def philox_blocks(key: tuple[int, int], counter: tuple[int, int], count: int
                  ) -> np.ndarray:
  """`count` Philox-4x32-10 blocks from (key, counter) on: uint32 [count, 4].

  key: a 64-bit key as (low word, high word). counter: the 128-bit counter as two
  uint64 (low half, high half); block i uses counter + i.
  """
  low = np.uint64(counter[0]) + np.arange(count, dtype=np.uint64)  # Wraps mod 2^64.
  carry = (low < np.uint64(counter[0])).astype(np.uint64)
  high = np.uint64(counter[1]) + carry
  words = [(low & _LOW32).astype(np.uint32), (low >> np.uint64(32)).astype(np.uint32),
           (high & _LOW32).astype(np.uint32), (high >> np.uint64(32)).astype(np.uint32)]
  k0, k1 = np.uint32(key[0]), np.uint32(key[1])
  for round_ in range(10):
    product0 = _M0 * words[0].astype(np.uint64)
    product1 = _M1 * words[2].astype(np.uint64)
    hi0 = (product0 >> np.uint64(32)).astype(np.uint32)
    lo0 = (product0 & _LOW32).astype(np.uint32)
    hi1 = (product1 >> np.uint64(32)).astype(np.uint32)
    lo1 = (product1 & _LOW32).astype(np.uint32)
    words = [hi1 ^ words[1] ^ k0, lo1, hi0 ^ words[3] ^ k1, lo0]
    if round_ < 9:
      k0, k1 = np.uint32((int(k0) + int(_W0)) & 0xFFFFFFFF), np.uint32((int(k1) + int(_W1)) & 0xFFFFFFFF)
  return np.stack(words, axis=-1)


def _join(low: np.ndarray, high: np.ndarray) -> np.ndarray:
  return low.astype(np.uint64) | (high.astype(np.uint64) << np.uint64(32))


@dataclasses.dataclass(frozen=True)
class Seed:
  """A stateless seed [s0, s1] (int64) and the Philox key and counter it selects."""
  key: tuple[int, int]
  counter: tuple[int, int]
  pair: tuple[int, int] = (0, 0)  # (s0, s1) as int64

  def as_words(self) -> np.ndarray:
    """[s0, s1] as uint32 [4] (each int64's low word, then its high word), as
    tf.bitcast gives them."""
    return np.array(self.pair, np.int64).view(np.uint32).copy()

  @classmethod
  def of(cls, s0: int, s1: int) -> Seed:
    counter = (int(np.int64(s0).astype(np.uint64)), int(np.int64(s1).astype(np.uint64)))
    mix = philox_blocks((_SCRAMBLE_KEY & 0xFFFFFFFF, _SCRAMBLE_KEY >> 32), counter, 1)[0]
    return cls(key=(int(mix[0]), int(mix[1])), counter=(0, int(_join(mix[2], mix[3]))),
               pair=(int(np.int64(s0)), int(np.int64(s1))))

  def words(self, count: int) -> np.ndarray:
    """The first `count` random uint32 words of this seed's stream."""
    return philox_blocks(self.key, self.counter, -(-count // 4)).reshape(-1)[:count]

  def uint64(self, count: int) -> np.ndarray:
    """`count` random uint64 (two per block; the 4th word of a block pairs with no
    word of the next)."""
    words = self.words(2 * count)
    return _join(words[0::2], words[1::2])

  def fold_in(self, data: int, bits: int = 64) -> Seed:
    """stateless_fold_in(seed, data): [a random int, data], the int of data's width
    (a Python int data is int32 in TensorFlow, a step or index tensor int64)."""
    if bits == 32:
      return Seed.of(int(self.words(1).astype(np.int32)[0]), data)
    return Seed.of(int(self.uint64(1)[0].astype(np.int64)), data)

  def split(self, num: int) -> list[Seed]:
    """stateless_split(seed, num): `num` seeds from 2 * num random int64."""
    values = self.uint64(2 * num).astype(np.int64).reshape(num, 2)
    return [Seed.of(int(a), int(b)) for a, b in values]

  def uniform_int(self, low: int, high: int) -> int:
    """One int64 in [low, high)."""
    return low + int(self.uint64(1)[0] % np.uint64(high - low))

  def uniform_int32(self, low: int, high: int, count: int) -> np.ndarray:
    """int64 [count] from int32 draws in [low, high) (one word each)."""
    return low + (self.words(count) % np.uint32(high - low)).astype(np.int64)

  def uniform_float(self, count: int) -> np.ndarray:
    """float32 [count] in [0, 1)."""
    return _unit_floats(self.words(count))

  def normal(self, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal float32 of `shape` (Box-Muller on word pairs)."""
    count = int(np.prod(shape, dtype=np.int64))
    words = self.words(count + count % 2)
    u1 = np.maximum(_unit_floats(words[0::2]), np.float32(1e-7))
    # 2 pi in double precision times u, then rounded to float32, as the C++ kernel.
    v1 = (2.0 * np.pi * _unit_floats(words[1::2]).astype(np.float64)).astype(np.float32)
    # log, sin and cos in double, then rounded to float32. TensorFlow calls the C
    # library's logf, sinf and cosf, which differ from these in the last bit for
    # about 1.4% of the values: the noise then differs by ~1e-7 * sigma / 255.
    radius = np.sqrt(np.float32(-2.0) * np.log(u1.astype(np.float64)).astype(np.float32))
    sin = np.sin(v1.astype(np.float64)).astype(np.float32)
    cos = np.cos(v1.astype(np.float64)).astype(np.float32)
    out = np.empty(words.size, np.float32)
    out[0::2] = sin * radius
    out[1::2] = cos * radius
    return out[:count].reshape(shape)


def _unit_floats(words: np.ndarray) -> np.ndarray:
  bits = (words & np.uint32(0x7FFFFF)) | np.uint32(0x3F800000)
  return bits.view(np.float32) - np.float32(1.0)


@dataclasses.dataclass(frozen=True)
class ClipDraw:
  """The random choices of one clip.

  sequence (index into the sequence list), start (its first frame), y, x (crop
  corner), flips (horizontal, vertical, rotate by 90 degrees; 0 or 1), channels (the
  RGB order), sigma (noise std in 8-bit units), noise_seed (seed of the noise).
  """
  sequence: int
  start: int
  y: int
  x: int
  flips: tuple[int, int, int]
  channels: tuple[int, int, int]
  sigma: np.float32
  noise_seed: Seed


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
    self.seed = Seed.of(seed, 0)
    self.augment = augment
    self.augment_colour = augment_colour
    self.noise_std_sigma = np.float32(noise_std_sigma)

  def __call__(self, step: int, index: int) -> ClipDraw:
    """The clip of global batch element `index` at `step`."""
    element = self.seed.fold_in(step).fold_in(index)
    keys = element.split(NUM_KEYS)
    clip = keys[0].uniform_int(0, self.total_clips)
    sequence = int(np.searchsorted(self.clip_end, clip, side="right"))
    start = clip - int(self.clip_end[sequence] - self.num_starts[sequence])
    height, width = self.sizes[sequence]
    crop_h, crop_w = self.crop
    y = keys[1].uniform_int(0, height - crop_h + 1)
    x = keys[2].uniform_int(0, width - crop_w + 1)
    flips = keys[3].uniform_int32(0, 2, 3)
    if not self.augment:
      flips = np.zeros(3, np.int64)
    elif crop_h != crop_w:
      flips[2] = 0
    sigma = self.noise_std_sigma * np.abs(keys[4].normal(()))
    channels = (0, 1, 2)
    if self.augment_colour:
      # Stable argsort, as TensorFlow's for the (tie-free in practice) draws.
      order = np.argsort(element.fold_in(NUM_KEYS, bits=32).uniform_float(3), kind="stable")
      channels = tuple(int(c) for c in order)
    return ClipDraw(sequence=sequence, start=int(start), y=int(y), x=int(x),
                    flips=tuple(int(f) for f in flips), channels=channels,
                    sigma=np.float32(sigma), noise_seed=keys[5])


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
