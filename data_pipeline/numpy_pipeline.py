"""The training input without TensorFlow: numpy, worker threads and prefetch.

    batches = make_train_iterator(sequences, batch_size=4, seed=0)
    batch = next(batches)   # {"blur", "sharp"}: float32 [4, 12, 256, 256, 3],
                            # {"noise_key"}: uint32 [4, 4], {"noise_sigma"}: float32 [4]

The same recipe and the same batches as input_pipeline's tf.data pipeline: both take
each clip's random choices from clip_sampler.ClipSampler and apply them as its
`ClipDraw` defines, so the batch at step k is the same pure function of (seed, k). The
per-pixel noise is not added here: each clip's 'noise_sigma' (8-bit units) and
'noise_key' go with the batch, and the train step draws the noise on the device
(ifirnn_jax.training.input_noise). Frames are decoded by `read_image` (Pillow), which gives the
pixels of tf.io's decoders (PNG exactly, JPEG with its accurate integer DCT). Clips are
made by `num_workers` threads (Pillow and numpy release the GIL), `prefetch` batches
ahead.
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
from collections.abc import Iterator, Sequence as SequenceType

import numpy as np

from data_pipeline import clip_sampler, image_io, pixels
from data_pipeline.clip_sampler import ClipDraw, ClipSampler
from data_pipeline.layouts import Sequence

Batch = dict[str, np.ndarray]


def augment_clip(both: np.ndarray, draw: ClipDraw) -> np.ndarray:
  """[N, h, w, 3] flipped, rotated and its channels ordered as `draw` says (a view
  where it can be)."""
  both = np.flip(both, axis=tuple(int(a) for a in np.flatnonzero(draw.reverse)))
  if draw.transpose:
    both = np.swapaxes(both, 1, 2)
  if draw.channels != (0, 1, 2):
    both = both[..., list(draw.channels)]
  return both


def make_train_iterator(
    sequences: SequenceType[Sequence], *, batch_size: int, seed: int,
    clip_length: int = 12, crop_size: int | tuple[int, int] = 256,
    start_step: int = 0, process_index: int = 0, process_count: int = 1,
    noise_std_sigma: float = 2.0, augment: bool = True, augment_colour: bool = False,
    cache_frames: bool = False, prefetch: int = 2,
    num_workers: int | None = None) -> Iterator[Batch]:
  """An endless iterator over this process's slice of the training batches.

  The arguments and batches of input_pipeline.make_train_iterator (see there), plus
  num_workers: threads making clips (default: the number of CPUs).

  Raises:
    DataError: for bad arguments, unusable sequences and unreadable frames (while
      iterating too, naming the file).
  """
  crop = clip_sampler.crop_shape(crop_size)
  sizes = clip_sampler.check_train_inputs(sequences, batch_size, clip_length, crop,
                                          start_step, process_index, process_count,
                                          noise_std_sigma)
  local_batch = batch_size // process_count
  first_index = process_index * local_batch
  sampler = ClipSampler(sizes, [s.num_frames for s in sequences], clip_length, crop,
                        seed, augment, float(noise_std_sigma), augment_colour)
  workers = num_workers or os.cpu_count() or 1
  cache = None
  if cache_frames:
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
      cache = [tuple(np.stack(list(pool.map(image_io.read_image, paths)))
                     for paths in (s.blur_paths, s.sharp_paths)) for s in sequences]

  def frames(draw: ClipDraw) -> tuple[np.ndarray, np.ndarray]:
    window = (slice(draw.start, draw.start + clip_length),
              slice(draw.y, draw.y + crop[0]), slice(draw.x, draw.x + crop[1]))
    if cache is not None:
      blur, sharp = cache[draw.sequence]
      return blur[window], sharp[window]
    sequence = sequences[draw.sequence]
    return tuple(np.stack([image_io.read_image(p)[window[1:]]
                           for p in paths[window[0]]])
                 for paths in (sequence.blur_paths, sequence.sharp_paths))

  def make_clip(draw: ClipDraw) -> dict[str, np.ndarray]:
    blur, sharp = frames(draw)
    both = augment_clip(np.concatenate([blur, sharp]), draw)
    both = pixels.to_unit_float(both)  # a new array: no cache shared
    clip = {"blur": both[:clip_length], "sharp": both[clip_length:]}
    if noise_std_sigma > 0:  # drawn on the device (ifirnn_jax.training.input_noise)
      clip.update(noise_key=np.array(draw.noise_key, np.uint32), noise_sigma=draw.sigma)
    return clip

  def batches() -> Iterator[Batch]:
    pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="clips")
    pending: collections.deque = collections.deque()
    next_step = start_step
    try:
      while True:
        while len(pending) < prefetch + 1:
          draws = sampler.draws(next_step, range(first_index, first_index + local_batch))
          pending.append([pool.submit(make_clip, draw) for draw in draws])
          next_step += 1
        clips = [future.result() for future in pending.popleft()]
        # np.stack makes new arrays: a yielded batch is never written again (on CPU the
        # device arrays made from it share its memory).
        yield {k: np.stack([c[k] for c in clips]) for k in clips[0]}
    finally:
      pool.shutdown(wait=False, cancel_futures=True)

  return batches()
