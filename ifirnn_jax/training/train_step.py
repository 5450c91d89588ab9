"""The optimizer and the jitted data-parallel train step (the recipe's core).

`make_train_step` is the step `python -m ifirnn_jax.train` runs and
`python -m ifirnn_jax.benchmark --mode train` times: `train_step` jitted over a device
Mesh with the batch sharded on the 'data' axis (NamedSharding), 1 to N devices (and
several processes through jax.distributed) with no code change.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import struct
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from ifirnn_jax.training import default_config, input_noise
from ifirnn_jax.model import losses
from ifirnn_jax.model.network import IFIRNN, Params
from ifirnn_jax.runtime import cpu_devices


@struct.dataclass
class TrainState:
  step: jax.Array
  params: Params
  opt_state: optax.OptState


# ------------------------------------------------------------------ model, optimizer
def create_model(config: ml_collections.ConfigDict) -> IFIRNN:
  """The IFIRNN of `config.model` (scan_unroll 0: auto, chosen per platform by the model
  for the batch each device runs, models.frame_scan_unroll)."""
  return default_config.model_from_config(config.model)


def initial_params(config: ml_collections.ConfigDict, model: IFIRNN, key: jax.Array) -> Params:
  """model.init (PyTorch's default init), optionally with F_L's last conv at zero."""
  params = model.init(key)
  if config.model.zero_init_output:
    last = params[f"cells_{model.cells - 1}"]["F_L_2"]
    last = jax.tree.map(jnp.zeros_like, last)
    params[f"cells_{model.cells - 1}"]["F_L_2"] = last
  return params


def create_learning_rate_fn(config: ml_collections.ConfigDict) -> optax.Schedule:
  """lr halved every `lr_halve_every_steps` (the paper: 1e-4, halved every 200 epochs)."""
  return optax.exponential_decay(config.learning_rate,
                                 default_config.lr_halve_every_steps(config),
                                 decay_rate=0.5, staircase=True)


def create_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  adam = optax.adam(create_learning_rate_fn(config), b1=0.9, b2=0.999)
  if config.grad_clip_norm > 0:
    return optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), adam)
  return adam


# ------------------------------------------------------------------ the step
def train_step(state: TrainState, batch: dict[str, jax.Array], seed_key: jax.Array,
               first_bad_step: jax.Array, *, model: IFIRNN, tx: optax.GradientTransformation,
               lr_fn: optax.Schedule, reg_lambda: float, reg_tau: float,
               mesh: Mesh | None = None) -> tuple[TrainState, dict[str, jax.Array]]:
  """One Adam step on L_content (+ lambda * L_reg for gated models), through all frames.

  batch: {'blur', 'sharp'}: [B, T, H, W, 3] float32 in [0, 1], sharded on 'data'; with
    the loaders' 'noise_key' and 'noise_sigma' the blur's per-pixel noise is drawn
    here, on the device (input_noise.py).
  The gate's Gumbel noise comes from fold_in(seed_key, step): a pure function of both.
  first_bad_step: int32 [], the first step whose loss was not finite, 0 if none; the
    metrics carry it on ('first_bad_step', this step's number if its loss is the first
    non-finite one), so the loop learns of a bad loss without waiting for every step.
  mesh: the devices the batch is sharded over ('data' axis). Over several devices and
    for a model without gate, each shard computes its gradients (`jax.shard_map`) and
    they are averaged in one all-reduce of all of them raveled into one vector, not
    in the one all-reduce per parameter gradient (inside the frame loop too) that the
    compiler's partitioning emits: over processes on CPU (gloo) those cost more than
    the step itself. L_content is a mean over clips, so the mean of the shards' means
    is the same loss. A gated model's L_reg squares a mean over the whole batch, which
    does not split over shards, so gated models keep the compiler's partitioning.
  """
  gate_key = jax.random.fold_in(seed_key, state.step)

  def loss_fn(params, batch):
    batch = input_noise.add_noise(batch)  # per clip: each shard draws its clips' noise
    output, _, trace = model.apply_sequence(
        params, batch["blur"], gate_mode="gumbel" if model.gated else None,
        gate_key=gate_key if model.gated else None, unroll_iterations=True)
    loss, terms = losses.total_loss(output, batch["sharp"], trace, reg_lambda, reg_tau)
    return loss, terms

  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  if mesh is not None and mesh.size > 1 and not model.gated:
    grad_fn = _averaged_over_shards(grad_fn, mesh)
  (loss, terms), grads = grad_fn(state.params, batch)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  first_bad_step = jnp.where((first_bad_step == 0) & ~jnp.isfinite(loss),
                             state.step + 1, first_bad_step).astype(jnp.int32)
  metrics = dict(terms, loss=loss, grad_norm=optax.global_norm(grads),
                 learning_rate=lr_fn(state.step), first_bad_step=first_bad_step)
  return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics


def init_train_state(params: Params, tx: optax.GradientTransformation) -> TrainState:
  """Step 0: `params` and the optimizer's initial state."""
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))


def data_mesh(devices: list[jax.Device]) -> Mesh:
  """The devices as one 'data' axis: the batch is split over them, the rest replicated."""
  return Mesh(np.array(devices), ("data",))


class JittedStep(NamedTuple):
  """`train_step` jitted over a mesh, with the shardings of its arguments."""

  fn: Callable[..., tuple[TrainState, dict[str, jax.Array]]]  # (state, batch, seed_key,
  #                                                           first_bad_step)
  replicated: NamedSharding      # the state, the seed key and the metrics
  data_sharding: NamedSharding   # the batch: clips split over the 'data' axis


def make_train_step(model: IFIRNN, tx: optax.GradientTransformation, lr_fn: optax.Schedule,
                    mesh: Mesh, *, reg_lambda: float, reg_tau: float) -> JittedStep:
  """The step training runs (and `python -m ifirnn_jax.benchmark --mode train` times).

  `fn(state, batch, seed_key, first_bad_step) -> (state, metrics)` donates `state`
  (`first_bad_step`: 0 at the start, then the last step's metrics['first_bad_step']).
  On CPU devices each device runs its share single-threaded
  (cpu_devices.step_compiler_options).
  """
  replicated = NamedSharding(mesh, P())
  data_sharding = NamedSharding(mesh, P("data"))
  fn = jax.jit(
      functools.partial(train_step, model=model, tx=tx, lr_fn=lr_fn, reg_lambda=reg_lambda,
                        reg_tau=reg_tau, mesh=mesh),
      in_shardings=(replicated, data_sharding, replicated, replicated),
      out_shardings=(replicated, replicated), donate_argnums=0,
      compiler_options=cpu_devices.step_compiler_options(list(mesh.devices.flat)))
  return JittedStep(fn, replicated, data_sharding)


def _averaged_over_shards(grad_fn, mesh: Mesh):
  """grad_fn(params, batch) run on each 'data' shard; every output averaged over shards.

  The gradients travel as one raveled vector: one all-reduce per step.
  """
  def per_shard(params, batch):
    (loss, terms), grads = grad_fn(params, batch)
    flat_grads, unravel = ravel_pytree(grads)
    loss, terms, flat_grads = jax.lax.pmean((loss, terms, flat_grads), "data")
    return (loss, terms), unravel(flat_grads)

  # check_vma=False: the frame scan starts from a zero hidden state created per shard.
  return jax.shard_map(per_shard, mesh=mesh, in_specs=(P(), P("data")), out_specs=P(),
                       check_vma=False)
