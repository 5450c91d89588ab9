"""Training: `python -m ifirnn_jax.train --config configs/<x>.py --workdir W`.

Reads top to bottom as the recipe (flax examples/imagenet, big_vision): the optimizer,
the pure `train_step`, `make_train_step` (it jitted over the device mesh: the step that
`python -m ifirnn_jax.benchmark --mode train` times too), then `train_and_evaluate` in
banner-separated sections: logging, mesh, data, model and optimizer, checkpoints (exact
resume), loop, final evaluation.

Data parallel: one `jax.jit` step over a device Mesh with the batch sharded on the
'data' axis (NamedSharding), 1 to N devices with no code change; several hosts through
`jax.distributed` (flags, or auto-detected under SLURM), each process feeding its slice
of every global batch. On a multi-core CPU one process trains over one XLA CPU device
per core, each step single-threaded (`config.cpu_devices`, cpu_devices.py); one
single-core process per core (`launch/cpu_processes.sh`) is a little faster still, with
twice the memory. Exact resume: batch k and the gate's noise at step k are pure
functions of (seed, k), so a restarted run continues bit for bit.
"""

from __future__ import annotations

import collections
import functools
import math
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import data_pipeline  # noqa: F401  First: sets TensorFlow's quiet defaults (if it is used).
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from flax import struct
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from data_pipeline import files, layouts, loaders, termination
from ifirnn_jax import checkpoint as ckpt
from ifirnn_jax import (cpu_devices, cpu_policy, default_config, device_input, evaluation,
                        input_noise, losses, reports, weights, writers)
from ifirnn_jax.models import IFIRNN, Params


class TrainingError(Exception):
  """A run that cannot go on (non-finite loss, unusable init_from, ...)."""


class Interrupted(Exception):
  """Ctrl-C or SIGTERM during training, once the checkpoint being saved is complete."""

  def __init__(self, interrupt: KeyboardInterrupt, message: str):
    super().__init__(message)
    self.interrupt = interrupt


@struct.dataclass
class TrainState:
  step: jax.Array
  params: Params
  opt_state: optax.OptState


# ------------------------------------------------------------------ model, optimizer
def create_model(config: ml_collections.ConfigDict, backend: str | None = None,
                 device_count: int | None = None) -> IFIRNN:
  """The IFIRNN of `config.model` (scan_unroll 0: cpu_policy's choice for the batch
  split over `device_count` devices, default all)."""
  m = config.model
  return default_config.build_model(
      m.name, n1=m.n1, n2=m.n2, n3=m.n3, nh=m.nh, num_resblocks=m.num_resblocks,
      gate_hidden=m.gate_hidden, residual_output=m.residual_output,
      compute_dtype=m.compute_dtype,
      scan_unroll=cpu_policy.resolve_scan_unroll(config, backend, device_count),
      remat=m.remat, conv_impl=m.conv_impl)


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


def _load_init_params(path: str, model: IFIRNN) -> Params:
  """Params to fine-tune from: a workdir (latest checkpoint) or a weight file."""
  try:
    if Path(path).is_dir():
      source_model, params = ckpt.load_checkpoint(path)
      if source_model.architecture() != model.architecture():
        raise TrainingError(f"config.init_from: {path} holds {source_model.name} "
                            f"{source_model.architecture()}, not {model.architecture()}")
      return params
    return weights.load_weights(path, model)
  except (ckpt.CheckpointError, weights.WeightsError) as e:
    raise TrainingError(f"config.init_from: {e}") from None


def _sequences(config: ml_collections.ConfigDict, split: str,
               clip_length: int | None = None) -> list:
  extra = {"blur_dir": config.data.blur_dir} if config.data.layout == "gopro" else {}
  return layouts.find_sequences(config.data.root, config.data.layout, split,
                                clip_length=clip_length, **extra)


# Steps dispatched ahead of the last finished one, and batches sent to the devices ahead.
MAX_STEPS_AHEAD = 2
PREFETCH_BATCHES = 2


def max_steps_ahead(mesh: Mesh) -> int:
  """MAX_STEPS_AHEAD; 1 over several CPU devices, whose all-reduce of one step waits on a
  rendezvous of every device's thread: with many steps queued back to back the CPU
  client's threads were all taken by queued work and the rendezvous timed out (40 s,
  the process aborted), seen with 2 devices on 2 cores."""
  cpu = mesh.devices.flat[0].platform == "cpu"
  return 1 if cpu and mesh.size > 1 else MAX_STEPS_AHEAD


def _stop_if_not_finite(first_bad_step: jax.Array, history: list[dict[str, jax.Array]],
                        step: int, checkpoints: ckpt.RunCheckpoints, workdir: Path) -> None:
  """Raises TrainingError if a loss up to `step` was not finite (waits for `step`).

  history: the metrics of the steps since the last log, `step`'s last (the first bad
  step is among them: every log step is checked).
  """
  bad = int(jax.device_get(first_bad_step))
  if not bad:
    return
  index = bad - (step - len(history) + 1)
  loss = float(jax.device_get(history[index]["loss"])) if 0 <= index < len(history) else math.nan
  checkpoints.wait()
  last_good = checkpoints.latest_step()
  kept = (f"The last good checkpoint (step {last_good}) in {workdir / 'checkpoints'} "
          f"is intact" if last_good is not None else
          f"No checkpoint was saved before it ({workdir / 'checkpoints'} is empty)")
  raise TrainingError(
      f"non-finite loss ({loss}) at step {bad}: stopping. {kept}; lower "
      "config.learning_rate or set config.grad_clip_norm and restart.")


def _mean_metrics(history: list[dict[str, jax.Array]]) -> dict[str, float]:
  stacked = jax.device_get(history)
  return {k: float(np.mean([h[k] for h in stacked])) for k in stacked[0]}


# ------------------------------------------------------------------ the loop
def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains `config` in `workdir` (resuming from its last checkpoint) and evaluates.

  Returns the final evaluation summary (or {} when config.final_eval is off).
  """
  workdir_path = Path(workdir)
  if workdir_path.exists() and not workdir_path.is_dir():
    raise TrainingError(f"--workdir {workdir}: exists and is not a folder")
  # First, before anything starts JAX's backend, which fixes its number of CPU devices.
  default_config.check_cpu_devices(config)
  cpu_device_count = cpu_devices.resolve(config.cpu_devices, config.batch_size)
  cpu_devices.request_cpu_devices(cpu_device_count)
  default_config.validate(config, jax.process_count())
  num_steps = default_config.num_train_steps(config)
  is_main = jax.process_index() == 0

  # ---------------------------------------------------------------- data (made first,
  # so bad paths and bad files fail before anything is compiled)
  if config.data.make_default_if_missing:
    from data_pipeline import default_data
    if is_main:
      default_data.ensure_default_dataset(config.data.root, **config.data.default_data)
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils
      multihost_utils.sync_global_devices("default data ready")
  train_sequences = _sequences(config, config.data.train_split, config.clip_length)
  eval_sequences = _sequences(config, config.data.eval_split)

  # ---------------------------------------------------------------- logging
  # The numpy loader runs without TensorFlow: its metrics go through tensorboardX.
  loader = loaders.resolve_loader(config.data.loader)
  use_tensorflow = loader == "tfdata"
  logging.info("Training input: %s", loader)
  writer = writers.create_writer(workdir, just_logging=not is_main,
                                 use_tensorflow=use_tensorflow)
  if is_main:
    workdir_path.mkdir(parents=True, exist_ok=True)

  # ---------------------------------------------------------------- mesh
  mesh = data_mesh(cpu_devices.training_devices(cpu_device_count))
  if config.batch_size % mesh.size:
    raise default_config.ConfigError(f"config.batch_size={config.batch_size} must be "
                                     f"divisible by the {mesh.size} devices")
  one_core_each = cpu_devices.step_compiler_options(list(mesh.devices.flat))
  logging.info("%d devices on %d processes%s; global batch %d", mesh.size,
               jax.process_count(), " (CPU: one core each)" if one_core_each else "",
               config.batch_size)

  # ---------------------------------------------------------------- model, optimizer
  model = create_model(config, device_count=mesh.size)
  tx = create_optimizer(config)
  lr_fn = create_learning_rate_fn(config)
  seed_key = jax.random.key(config.seed)
  step_fn, replicated, data_sharding = make_train_step(
      model, tx, lr_fn, mesh, reg_lambda=config.reg_lambda, reg_tau=config.reg_tau)
  init_state = functools.partial(init_train_state, tx=tx)

  abstract = jax.eval_shape(lambda k: init_state(model.init(k)), seed_key)
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated),
                          abstract)

  # ---------------------------------------------------------------- checkpoints
  checkpoints = ckpt.RunCheckpoints(workdir_path, keep=config.keep_checkpoints)
  restored = checkpoints.restore_latest(
      model, abstract.params, {"step": abstract.step, "opt_state": abstract.opt_state})
  if restored is not None:
    latest, params, train = restored
    state = TrainState(step=train["step"], params=params, opt_state=train["opt_state"])
    logging.info("Resumed from %s at step %d", workdir_path / "checkpoints", latest)
  else:
    params = (_load_init_params(config.init_from, model) if config.init_from
              else initial_params(config, model, jax.random.fold_in(seed_key, 2**31 - 1)))
    state = jax.jit(init_state, out_shardings=replicated)(params)
  start_step = int(jax.device_get(state.step))
  if is_main:  # after the resume, so a refused workdir keeps its config.json
    files.write_json_atomic(workdir_path / "config.json", config.to_dict())
    writer.write_hparams({k: v for k, v in config.to_dict().items()
                          if isinstance(v, (int, float, str, bool))})

  train_iter = loaders.make_train_iterator(
      loader, train_sequences, batch_size=config.batch_size, clip_length=config.clip_length,
      crop_size=config.crop_size, seed=config.seed, start_step=start_step,
      process_index=jax.process_index(), process_count=jax.process_count(),
      noise_std_sigma=config.noise_std_sigma, augment=config.augment,
      augment_colour=config.augment_colour,
      cache_frames=config.data.cache_frames)

  # ---------------------------------------------------------------- loop
  history: list[dict[str, jax.Array]] = []
  last_log_time, last_log_step = time.perf_counter(), start_step
  step = start_step
  if start_step >= num_steps:
    logging.info("%s in %s already finished its %d steps: not training, only evaluating",
                 model.name, workdir_path, num_steps)
  elif start_step:
    logging.info("Training %s for steps %d..%d (resumed at step %d)", model.name,
                 start_step + 1, num_steps, start_step)
  else:
    logging.info("Training %s for %d steps", model.name, num_steps)
  # The loop runs ahead of the devices: it reads device values only at log, evaluation
  # and checkpoint steps, and otherwise waits (without a transfer) for step k - 2 once
  # step k is dispatched (k - 1 over several CPU devices), so at most max_steps_ahead
  # steps and PREFETCH_BATCHES batches are queued.
  batches = device_input.prefetch_to_device(train_iter, data_sharding, PREFETCH_BATCHES)
  first_bad_step = jax.jit(lambda: jnp.zeros((), jnp.int32), out_shardings=replicated)()
  in_flight: collections.deque = collections.deque()
  steps_ahead = max_steps_ahead(mesh)
  try:
    for step in range(start_step + 1, num_steps + 1):
      state, metrics = step_fn(state, next(batches), seed_key, first_bad_step)
      first_bad_step = metrics.pop("first_bad_step")
      history.append(metrics)
      in_flight.append(metrics["loss"])
      if len(in_flight) > steps_ahead:
        jax.block_until_ready(in_flight.popleft())
      logs = step % config.log_every_steps == 0 or step == num_steps
      evaluates = step % config.eval_every_steps == 0 or step == num_steps
      saves = step % config.checkpoint_every_steps == 0 or step == num_steps
      if logs or evaluates or saves:  # never log, score or save a non-finite state
        _stop_if_not_finite(first_bad_step, history, step, checkpoints, workdir_path)

      if logs:
        now = time.perf_counter()
        scalars = _mean_metrics(history)
        steps_per_sec = (step - last_log_step) / (now - last_log_time)
        scalars.update(steps_per_sec=steps_per_sec,
                       clips_per_sec=steps_per_sec * config.batch_size)
        writer.write_scalars(step, scalars)  # the one steps/s of this report
        if step < num_steps:
          logging.info("step %d/%d (%.0f%%), ETA %s", step, num_steps, 100 * step / num_steps,
                       files.hms((num_steps - step) / steps_per_sec))
        history, last_log_time, last_log_step = [], now, step

      if evaluates:
        try:
          summary = evaluation.evaluate_sequences(
              model, _host_params(state.params), eval_sequences,
              skip_first=config.eval.skip_first, skip_last=config.eval.skip_last,
              max_sequences=config.eval.max_sequences, max_frames=config.eval.max_frames,
              keep_example=True)
        except evaluation.EvalError as e:  # an unstable moment of training: go on
          logging.warning("validation at step %d skipped: %s", step, e)
        else:
          writer.write_scalars(step, {"val_psnr": summary.psnr, "val_ssim": summary.ssim,
                                      "val_blurry_psnr": summary.blurry_psnr})
          if summary.example is not None:
            writer.write_images(step, {k: v[None] for k, v in summary.example.items()})
          with termination.deferred_interrupts():  # a save is never cut halfway
            checkpoints.save_best(step, state.params, model, summary.psnr)

      if saves:
        with termination.deferred_interrupts():
          checkpoints.save(step, state.params,
                           {"step": state.step, "opt_state": state.opt_state}, model)
  except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: let a save in progress finish
    with termination.deferred_interrupts():
      checkpoints.wait()
    latest = checkpoints.latest_step()
    checkpoints.close()
    raise Interrupted(
        e, f"the last complete checkpoint is step {latest} in {workdir_path / 'checkpoints'}; "
        "run the same command to resume" if latest is not None
        else "no checkpoint was saved yet") from None
  checkpoints.wait()
  checkpoints.close()
  writer.flush()

  # ---------------------------------------------------------------- final evaluation
  if not config.final_eval:
    return {}
  settings = [evaluation.Setting(model.iterations)]
  skips = dict(skip_first=config.eval.skip_first, skip_last=config.eval.skip_last)
  results = evaluation.frame_results(model, _host_params(state.params), eval_sequences,
                                     settings, **skips)
  if is_main:
    results = reports.with_progress(results, sum(s.num_frames for s in eval_sequences), 1)
  summary = evaluation.summarize(results, settings, keep_example=True, **skips)[0]
  if is_main:
    for line in reports.unscored_warnings(summary, **skips):
      logging.warning("%s", line)
    print(reports.format_table(summary, model.name))
    reports.write_results(summary, workdir_path / "eval", model.name)
    if summary.example is not None:
      path = reports.write_before_after(summary.example, workdir_path / "before_after.png")
      print(f"before/after image: {path}")
  return summary.as_dict()


def _host_params(params: Params) -> Params:
  """Replicated (possibly multi-process) params as local arrays for evaluation."""
  return jax.tree.map(lambda x: jnp.asarray(np.asarray(x.addressable_data(0))), params)


# ------------------------------------------------------------------ command line
def main(argv: list[str]) -> None:
  """Kept short (flax examples/imagenet main.py): flags, platform set-up, then the run."""
  del argv
  import sys
  from data_pipeline.errors import DataError
  from ifirnn_jax import cli
  config = _FLAGS.config
  workdir = _FLAGS.workdir or str(Path("workdirs") / Path(_FLAGS["config"].config_filename
                                                         .split(":")[0]).stem)
  cli.quiet_library_logs()
  cli.initialize_distributed(_FLAGS.coordinator_address, _FLAGS.num_processes,
                             _FLAGS.process_id)
  try:
    with termination.sigterm_as_interrupt():
      train_and_evaluate(config, workdir)
  except (default_config.ConfigError, DataError, TrainingError, ckpt.CheckpointError,
          evaluation.EvalError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  except OSError as e:  # e.g. a read-only data root or workdir
    where = f"{e.filename}: " if e.filename else ""
    print(f"error: {where}{e.strerror or e}", file=sys.stderr)
    sys.exit(2)
  except Interrupted as e:
    what, status = termination.describe(e.interrupt)
    print(f"{what}: {e}", file=sys.stderr)
    sys.exit(status)
  except KeyboardInterrupt as e:  # before the training loop
    what, status = termination.describe(e)
    print(f"{what} before training started", file=sys.stderr)
    sys.exit(status)


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a bad flag or config file as one `error:` line (status 2)."""
  import sys
  from absl import flags
  config_arg = next((a.split("=", 1)[1] if "=" in a else argv[i + 1]
                     for i, a in enumerate(argv[1:], 1)
                     if a.split("=", 1)[0] == "--config" and ("=" in a or i + 1 < len(argv))),
                    None)
  if config_arg is not None and not Path(config_arg.split(":")[0]).is_file():
    print(f"error: --config {config_arg}: no such config file", file=sys.stderr)
    sys.exit(2)
  try:
    rest = flags.FLAGS(argv)
    _ = flags.FLAGS.config  # loads the config file; a broken one raises here
  except flags.Error as e:
    print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
    sys.exit(2)
  except (AttributeError, KeyError) as e:  # --config.<field> that the config lacks
    field = str(e).strip("\"'")
    print(f"error: --config.{field}: the config has no field {field!r}", file=sys.stderr)
    sys.exit(2)
  except Exception as e:  # an override of the wrong type, a config file that fails, ...
    print(f"error: --config {config_arg}: {' '.join(str(e).split())[:300]}", file=sys.stderr)
    sys.exit(2)
  return rest


if __name__ == "__main__":
  cpu_policy.start_command()  # may re-execute this process once (cpu_policy.py)
  from absl import app, flags
  from ml_collections import config_flags

  _FLAGS = flags.FLAGS
  config_flags.DEFINE_config_file("config", None, "Experiment config file "
                                  "(configs/<x>.py, or configs/<x>.py:tiny).",
                                  lock_config=True)
  flags.DEFINE_string("workdir", None, "Where checkpoints, metrics and results go "
                      "(default: workdirs/<config name>).")
  flags.DEFINE_string("coordinator_address", None, "Multi-host: host:port of process 0 "
                      "(auto-detected under SLURM).")
  flags.DEFINE_integer("num_processes", None, "Multi-host: number of processes.")
  flags.DEFINE_integer("process_id", None, "Multi-host: this process's index.")
  flags.mark_flags_as_required(["config"])
  app.run(main, flags_parser=_parse_flags)
