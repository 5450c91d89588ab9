"""Training batches prefetched onto the devices (as flax.jax_utils.prefetch_to_device).

    batches = prefetch_to_device(loader_batches, sharding, size=2)
    batch = next(batches)   # the loader's next batch, already global jax.Arrays

Each host batch becomes global arrays sharded as `sharding` (every process gives its
slice, `jax.make_array_from_process_local_data`) `size` batches before the step that
takes it, so its copy to the devices runs while the steps before it compute. The order
is the loader's, so resume stays exact; at most `size` batches wait on the devices.
On the CPU the arrays share the numpy batch's memory: the loaders never write into a
batch they have yielded.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator, Mapping

import jax
import numpy as np
from jax.sharding import Sharding


def to_global(batch: Mapping[str, np.ndarray], sharding: Sharding) -> dict[str, jax.Array]:
  """This process's slice of a batch -> global arrays sharded as `sharding`."""
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}


def prefetch_to_device(batches: Iterator[Mapping[str, np.ndarray]], sharding: Sharding,
                       size: int = 2) -> Iterator[dict[str, jax.Array]]:
  """The batches of `batches` as device arrays, `size` of them sent ahead (size >= 1)."""
  queue: collections.deque = collections.deque()
  while True:
    while len(queue) < size:
      queue.append(to_global(next(batches), sharding))
    yield queue.popleft()
