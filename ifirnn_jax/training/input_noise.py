"""The training input's per-pixel Gaussian noise, drawn on the device inside the step.

The loaders (data_pipeline) draw each clip's noise std sigma (8-bit units) and a
per-clip seed on the host and give them with the clean frames: 'noise_sigma' float32
[B] and 'noise_key' uint32 [B, 4] (four random words per clip,
data_pipeline.clip_sampler). `add_noise` turns them into blur + N(0, sigma^2) / 255 per pixel (not clipped,
as the paper), so the host only reads, crops and flips, and the noise of batch k stays
a pure function of (seed, k): resume is exact, on any number of devices.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

NOISE_FIELDS = ("noise_key", "noise_sigma")


def clip_key(words: jax.Array) -> jax.Array:
  """uint32 [4] (a clip's seed words) -> a threefry key."""
  key = jax.random.wrap_key_data(words[:2], impl="threefry2x32")
  return jax.random.fold_in(jax.random.fold_in(key, words[2]), words[3])


def add_noise(batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
  """batch with N(0, sigma_i^2) / 255 added to every pixel of clip i's 'blur'; the
  noise fields dropped. A batch without them is returned as it is (no noise)."""
  if "noise_key" not in batch:
    return batch
  blur = batch["blur"]
  noise = jax.vmap(lambda w: jax.random.normal(clip_key(w), blur.shape[1:], blur.dtype))(
      batch["noise_key"])
  sigma = batch["noise_sigma"].astype(blur.dtype) / 255.0
  rest = {k: v for k, v in batch.items() if k not in NOISE_FIELDS}
  return dict(rest, blur=blur + noise * sigma.reshape((-1,) + (1,) * (blur.ndim - 1)))


def example_fields(batch_size: int, noise_std_sigma: float, sharding=None
                   ) -> dict[str, jax.Array]:
  """Noise fields of a made-up batch (benchmarks): fixed keys, sigma = noise_std_sigma."""
  words = np.arange(4 * batch_size, dtype=np.uint32).reshape(batch_size, 4)
  sigma = np.full((batch_size,), noise_std_sigma, np.float32)
  fields = {"noise_key": words, "noise_sigma": sigma}
  return {k: jax.device_put(v, sharding) if sharding is not None else jnp.asarray(v)
          for k, v in fields.items()}
