"""The tf.data training pipeline: random augmented clips of paired sequences.

    sequences = layouts.find_sequences(root, "gopro", "train", clip_length=12)
    batches = make_train_iterator(sequences, batch_size=4, seed=0)
    batch = next(batches)   # {"blur", "sharp"}: float32 [4, 12, 256, 256, 3],
                            # {"noise_key"}: uint32 [4, 4], {"noise_sigma"}: float32 [4]

The recipe of the paper (Section 4.2), per clip (one batch element):
  * a clip of `clip_length` consecutive frames, drawn uniformly among all
    clips of all sequences (so a sequence is drawn in proportion to its
    number of clips, and every frame is about equally likely);
  * one random crop, shared by every frame of the clip and by blur and sharp;
  * if `augment`: a random horizontal flip, vertical flip and 90-degree
    (counter-clockwise) rotation, each with probability 1/2, shared by the
    whole clip; the rotation is only drawn for square crops (it would change
    the shape of a non-square crop) and skipped otherwise;
  * if `augment_colour` (not in the paper; off by default): a random
    permutation of the RGB channels, shared by the whole clip, blur and sharp;
  * Gaussian noise on blur only: per clip sigma = |s|, s ~ N(0,
    noise_std_sigma^2) in 8-bit units, then every pixel gets N(0, sigma^2)/255.
    As in the paper the noisy blur is NOT clipped, so it can leave [0, 1]
    slightly; sharp is exact (k / 255). Only sigma and the noise's key are
    drawn on the host ('noise_sigma', 'noise_key': four uint32 words); the train
    step draws the per-pixel noise on the device from them
    (ifirnn_jax.training.input_noise), so the host does not.

Determinism and restarts: every random choice of the clip for global batch
element i at step k is drawn in numpy by clip_sampler.ClipSampler, a pure function
of (seed, k, i), before tf.data sees it; tf.data's threads only read, crop and
augment as the draw says (the draws reach them through `from_generator`). So the
batch at step k is a pure function of (seed, k): a run restarted with
`start_step=k` sees exactly what an uninterrupted run sees from step k, and
numpy_pipeline, which consumes the same draws, gives the same batches. Multi-host: process p builds only elements [p * B_local, (p + 1) *
B_local) of each global batch, B_local = batch_size / process_count, so the
processes' batches concatenated in process order are the single-process batch.

Frames are decoded with tf.io (C++, parallel, faster than Pillow on PNG and JPEG;
docs/benchmarks.md) after
the sequences were validated from their file headers; JPEGs are decoded with
the accurate integer DCT, which gives exactly the pixels of `read_image`.
With `cache_frames=True` every frame is decoded once by `read_image` and held
in memory (uint8), for small data sets or hosts with enough RAM.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import os
from collections.abc import Callable, Iterator, Sequence as SequenceType

import numpy as np
import tensorflow as tf

from data_pipeline import clip_sampler, image_io, pixels
from data_pipeline.errors import DataError
from data_pipeline.eval_pipeline import iter_eval_frames, load_sequence
from data_pipeline.layouts import Sequence

__all__ = ["make_train_iterator", "steps_per_epoch", "iter_eval_frames",
           "load_sequence"]

Batch = dict[str, np.ndarray]
# A clip's draw as tf.data carries it (clip_sampler.ClipDraw).
_DRAW_SIGNATURE = {
    "sequence": tf.TensorSpec([], tf.int64), "start": tf.TensorSpec([], tf.int64),
    "frame": tf.TensorSpec([], tf.int64), "y": tf.TensorSpec([], tf.int64),
    "x": tf.TensorSpec([], tf.int64), "reverse": tf.TensorSpec([4], tf.bool),
    "transpose": tf.TensorSpec([], tf.bool), "channels": tf.TensorSpec([3], tf.int32),
    "sigma": tf.TensorSpec([], tf.float32), "noise_key": tf.TensorSpec([4], tf.uint32)}


def _hide_gpus_from_tensorflow() -> None:
  """Keeps TensorFlow off the accelerators, which belong to JAX."""
  try:
    tf.config.set_visible_devices([], "GPU")
  except RuntimeError:  # TF devices already initialised; nothing to change.
    pass


def steps_per_epoch(sequences: SequenceType[Sequence], batch_size: int,
                    clip_length: int) -> float:
  """Steps in which each training frame is seen once on average.

  The paper's epoch: every frame once as part of a clip, i.e. (number of
  frames) / (batch_size * clip_length); GOPRO: 2103 / (4 * 12) = 43.8.
  """
  return sum(s.num_frames for s in sequences) / (batch_size * clip_length)


def _draw_arrays(draw: clip_sampler.ClipDraw) -> dict[str, np.ndarray]:
  """`draw` as the arrays of _DRAW_SIGNATURE."""
  return {"sequence": np.int64(draw.sequence), "start": np.int64(draw.start),
          "frame": np.int64(draw.frame), "y": np.int64(draw.y), "x": np.int64(draw.x),
          "reverse": np.array(draw.reverse), "transpose": np.bool_(draw.transpose),
          "channels": np.array(draw.channels, np.int32), "sigma": np.float32(draw.sigma),
          "noise_key": np.array(draw.noise_key, np.uint32)}


def _decode_crop(path: tf.Tensor, y: tf.Tensor, x: tf.Tensor,
                 crop: tuple[int, int]) -> tf.Tensor:
  """Reads an image file and crops it: uint8 [h, w, 3]."""
  contents = tf.io.read_file(path)
  image = tf.cond(
      tf.io.is_jpeg(contents),
      # The accurate DCT gives Pillow's (hence read_image's) pixels exactly.
      lambda: tf.io.decode_jpeg(contents, channels=3,
                                dct_method="INTEGER_ACCURATE"),
      lambda: tf.io.decode_image(contents, channels=3, dtype=tf.uint8,
                                 expand_animations=False))
  return image[y:y + crop[0], x:x + crop[1]]


def _augment(clip: tf.Tensor, draw: dict[str, tf.Tensor],
             permute_channels: bool) -> tf.Tensor:
  """[N, h, w, 3] flipped, rotated and its channels ordered as the draw says
  (clip_sampler.ClipDraw: reverse, transpose, channels; numpy_pipeline.augment_clip)."""
  clip = tf.reverse(clip, tf.where(draw["reverse"])[:, 0])
  if clip.shape[1] == clip.shape[2]:  # only square crops are ever transposed
    clip = tf.cond(draw["transpose"], lambda: tf.transpose(clip, [0, 2, 1, 3]),
                   lambda: clip)
  if permute_channels:
    clip = tf.gather(clip, draw["channels"], axis=-1)
  return clip


def _finish_clip(blur: tf.Tensor, sharp: tf.Tensor, draw: dict[str, tf.Tensor],
                 add_noise: bool, permute_channels: bool) -> dict[str, tf.Tensor]:
  """Augments uint8 [T, h, w, 3] crops, converts to [0, 1]; with `add_noise` the
  clip's noise std and key, for the noise drawn on the device."""
  num_frames = blur.shape[0]
  both = _augment(tf.concat([blur, sharp], axis=0), draw, permute_channels)
  both = tf.cast(both, tf.float32) / float(pixels.UINT8_MAX)  # pixels.to_unit_float
  clip = {"blur": both[:num_frames], "sharp": both[num_frames:]}
  if add_noise:  # the per-pixel noise: ifirnn_jax.training.input_noise, inside the train step
    clip["noise_key"] = draw["noise_key"]
    clip["noise_sigma"] = draw["sigma"]
  return clip


def _file_clip_loader(sequences: SequenceType[Sequence], clip_length: int,
                      crop: tuple[int, int]) -> Callable:
  """(draw) -> uint8 blur, sharp [T, h, w, 3] read from the files."""
  blur_paths = tf.constant([str(p) for s in sequences for p in s.blur_paths])
  sharp_paths = tf.constant([str(p) for s in sequences for p in s.sharp_paths])

  def load(draw):
    y, x = draw["y"], draw["x"]
    blur = [_decode_crop(blur_paths[draw["frame"] + t], y, x, crop)
            for t in range(clip_length)]
    sharp = [_decode_crop(sharp_paths[draw["frame"] + t], y, x, crop)
             for t in range(clip_length)]
    return tf.stack(blur), tf.stack(sharp)

  return load


def _cached_clip_loader(sequences: SequenceType[Sequence], clip_length: int,
                        crop: tuple[int, int]) -> Callable:
  """(draw) -> uint8 blur, sharp [T, h, w, 3] cut from frames in memory."""
  with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
    cache = [_load_uint8(sequence, pool) for sequence in sequences]
  length = clip_length

  def cut(sequence, start, y, x):
    blur, sharp = cache[sequence]
    window = (slice(start, start + length), slice(y, y + crop[0]),
              slice(x, x + crop[1]))
    return np.array(blur[window]), np.array(sharp[window])

  def load(draw):
    blur, sharp = tf.numpy_function(
        cut, [draw["sequence"], draw["start"], draw["y"], draw["x"]],
        [tf.uint8, tf.uint8], stateful=False)
    return blur, sharp

  return load


def _load_uint8(sequence: Sequence, pool: concurrent.futures.Executor
                ) -> tuple[np.ndarray, np.ndarray]:
  """Every frame of a paired sequence, uint8 [N, H, W, 3] blur and sharp.

  Decoded by `read_image` in `pool` (Pillow decodes without the GIL).
  """
  blur = np.stack(list(pool.map(image_io.read_image, sequence.blur_paths)))
  sharp = np.stack(list(pool.map(image_io.read_image, sequence.sharp_paths)))
  return blur, sharp


def _find_unreadable_file(sequences: SequenceType[Sequence],
                          draws: list[clip_sampler.ClipDraw],
                          clip_length: int) -> DataError | None:
  """Re-reads the files of the clips `draws` to name a failing one."""
  for draw in draws:
    sequence = sequences[draw.sequence]
    for paths in (sequence.blur_paths, sequence.sharp_paths):
      for path in paths[draw.start:draw.start + clip_length]:
        try:
          image_io.read_image(path)
        except DataError as e:
          return e
  return None


def make_train_iterator(
    sequences: SequenceType[Sequence], *, batch_size: int, seed: int,
    clip_length: int = 12, crop_size: int | tuple[int, int] = 256,
    start_step: int = 0, process_index: int = 0, process_count: int = 1,
    noise_std_sigma: float = 2.0, augment: bool = True, augment_colour: bool = False,
    cache_frames: bool = False, prefetch: int = 2) -> Iterator[Batch]:
  """An endless iterator over this process's slice of the training batches.

  Args:
    sequences: paired training sequences (e.g. from `find_sequences`).
    batch_size: the GLOBAL batch size (clips per step over all processes).
    seed: the data seed; with the step it fixes every batch.
    clip_length: frames per clip, T.
    crop_size: crop height and width (int for square crops).
    start_step: the step of the first batch yielded (to resume a run).
    process_index: this process's index (jax.process_index()).
    process_count: the number of processes (jax.process_count()).
    noise_std_sigma: std of s, sigma = |s| the per-clip noise std on blur, in
      8-bit units (2.0 in the paper; 0 for no noise).
    augment: random flips and 90-degree rotations.
    augment_colour: a random permutation of the RGB channels per clip.
    cache_frames: decode every frame once and keep them in memory.
    prefetch: batches prepared ahead.

  Yields:
    {"blur", "sharp": float32 [B_local, T, h, w, 3] in [0, 1] (blur without
    its noise), and when noise_std_sigma > 0 "noise_key": uint32 [B_local, 4],
    "noise_sigma": float32 [B_local] (ifirnn_jax.training.input_noise adds the noise)},
    B_local = batch_size / process_count, starting at step `start_step`.

  Raises:
    DataError: for bad arguments, sequences without ground truth, shorter
      than `clip_length` or smaller than the crop, unreadable frames (also
      while iterating, naming the file where it can be found).
  """
  _hide_gpus_from_tensorflow()
  crop = clip_sampler.crop_shape(crop_size)
  sizes = clip_sampler.check_train_inputs(sequences, batch_size, clip_length, crop,
                                          start_step, process_index, process_count,
                                          noise_std_sigma)

  local_batch = batch_size // process_count
  indices = range(process_index * local_batch, (process_index + 1) * local_batch)
  sampler = clip_sampler.ClipSampler(sizes, [s.num_frames for s in sequences],
                                     clip_length, crop, seed, augment,
                                     float(noise_std_sigma), augment_colour)
  loader = (_cached_clip_loader if cache_frames else _file_clip_loader)(
      sequences, clip_length, crop)

  def draws() -> Iterator[dict[str, np.ndarray]]:
    """This process's clips of steps start_step, start_step + 1, ..., in order."""
    for step in itertools.count(start_step):
      for draw in sampler.draws(step, indices):
        yield _draw_arrays(draw)

  def make_clip(draw):
    blur, sharp = loader(draw)
    blur.set_shape([clip_length, *crop, 3])
    sharp.set_shape([clip_length, *crop, 3])
    return _finish_clip(blur, sharp, draw, noise_std_sigma > 0, augment_colour)

  options = tf.data.Options()
  options.deterministic = True
  options.threading.max_intra_op_parallelism = 1
  dataset = (
      tf.data.Dataset.from_generator(draws, output_signature=_DRAW_SIGNATURE)
      .map(make_clip, num_parallel_calls=tf.data.AUTOTUNE)
      .batch(local_batch, drop_remainder=True)
      .prefetch(prefetch)
      .with_options(options))

  def guarded():
    step = start_step
    iterator = dataset.as_numpy_iterator()
    while True:
      try:
        batch = next(iterator)
      except tf.errors.OpError as e:
        error = _find_unreadable_file(sequences, sampler.draws(step, indices), clip_length)
        raise (error or DataError(
            f"training input pipeline failed at step {step}: "
            f"{e.message}")) from None
      yield batch
      step += 1

  return guarded()
