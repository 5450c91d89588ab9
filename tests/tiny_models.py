"""Parameters for tiny test models, without compiling `model.init`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def tiny_params(model, seed: int = 0):
  """Random parameters of PyTorch's default scale, U(+-1/sqrt(fan_in)).

  Built from `jax.eval_shape(model.init)`: `model.init` itself compiles for about
  10 s on the 2-core CI machine, which these tests do not need.
  """
  rng = np.random.default_rng(seed)

  def fill(leaf):
    fan_in = int(np.prod(leaf.shape[:-1])) if len(leaf.shape) > 1 else 100
    bound = 1 / np.sqrt(fan_in)
    return jnp.asarray(rng.uniform(-bound, bound, leaf.shape).astype(np.float32))

  return jax.tree.map(fill, jax.eval_shape(model.init, jax.random.key(0)))
