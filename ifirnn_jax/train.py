"""Train an IFI-RNN: `python -m ifirnn_jax.train --config configs/<name>.py [--workdir W]`.

    python -m ifirnn_jax.train --config configs/demo.py
    python -m ifirnn_jax.train --config configs/demo.py:tiny --workdir /tmp/tiny
    python -m ifirnn_jax.train --config configs/gopro_c2h3_reg.py \\
        --config.data.root=/data/GOPRO_Large --config.batch_size=8

--config is an experiment file of configs/; `:tiny` after its name shrinks it to a
seconds-long smoke test. Change any field with --config.FIELD=VALUE, nested fields
with dots: --config.num_train_steps=1000, --config.model.name=C1H2,
--config.data.root=/data/GOPRO. The fields and their defaults:
ifirnn_jax/training/default_config.py (base_config).

The run writes config.json, checkpoints/, best/ (best validation PSNR), TensorBoard
events and the final evaluation (eval/) into --workdir (default: workdirs/<config file
name>). The same command again resumes from the latest checkpoint, to the same weights
bit for bit.

Exit status: 0 done, 2 bad input or a run that cannot go on (one line `error: ...` on
stderr), 130 Ctrl-C, 143 SIGTERM (once the checkpoint being saved is complete).
"""

# For developers: the optimizer and the jitted step are in training/train_step.py (the step that
# `python -m ifirnn_jax.benchmark --mode train` times too); this module reads top to
# bottom as the run (after flax examples/imagenet and big_vision): `train_and_evaluate`
# in banner-separated sections: data, the workdir (its lock and config, storage/workdir.py),
# logging, mesh, model and optimizer, checkpoints (exact resume), loop, final evaluation.
#
# Data parallel: one `jax.jit` step over a device Mesh with the batch sharded on the
# 'data' axis (NamedSharding), 1 to N devices with no code change; several hosts through
# `jax.distributed` (flags, or auto-detected under SLURM), each process feeding its slice
# of every global batch. On a multi-core CPU one process trains over one XLA CPU device
# per core, each step single-threaded (`config.cpu_devices`, runtime/cpu_devices.py); one
# single-core process per core (`launch/cpu_processes.sh`) is a little faster still, with
# twice the memory. Exact resume: batch k and the gate's noise at step k are pure
# functions of (seed, k), so a restarted run continues bit for bit.

from __future__ import annotations

import collections
import contextlib
import functools
import math
import time
from pathlib import Path
from typing import Any, Callable

import data_pipeline  # noqa: F401  First: sets TensorFlow's quiet defaults (if it is used).
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from jax.sharding import Mesh

from data_pipeline import clip_sampler, layouts, loaders
from data_pipeline.safe_io import files
from data_pipeline.commandline import termination
from ifirnn_jax.storage import checkpoint as ckpt
from ifirnn_jax import runtime
from ifirnn_jax.training import default_config, device_input, writers
from ifirnn_jax.evaluation import protocol, reports
from ifirnn_jax.storage import loading, weights
from ifirnn_jax.storage import workdir as run_dir
from ifirnn_jax.runtime import cpu_devices
from ifirnn_jax.model.network import IFIRNN, Params


class TrainingError(Exception):
  """A run that cannot go on (non-finite loss, unusable init_from, ...)."""


# Ctrl-C or SIGTERM during training, once the checkpoint being saved is complete.
Interrupted = termination.Stopped


from ifirnn_jax.training.train_step import (  # noqa: F401  (train.X is the API the benchmark uses)
    JittedStep, TrainState, create_learning_rate_fn, create_model, create_optimizer, data_mesh,
    init_train_state, initial_params, make_train_step, train_step)


def _load_init_params(path: str, model: IFIRNN) -> Params:
  """Params to fine-tune from: a workdir (latest checkpoint) or a weight file."""
  source = dict(workdir=path) if Path(path).is_dir() else dict(weight_file=path)
  try:
    return loading.load_network(**source, model=model)[1]
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
def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       allow_config_change: bool = False) -> dict[str, Any]:
  """Trains `config` in `workdir` (resuming from its last checkpoint) and evaluates.

  The run holds `workdir`'s lock (storage/workdir.py) until it returns. A resume whose config
  changes what is trained is refused unless `allow_config_change`.
  Returns the final evaluation summary (or {} when config.final_eval is off).
  """
  workdir_path = Path(workdir)
  if workdir_path.exists() and not workdir_path.is_dir():
    raise TrainingError(f"--workdir {workdir}: exists and is not a folder")
  # First, before anything starts JAX's backend, which fixes its number of CPU devices.
  default_config.check_cpu_devices(config)
  cpu_device_count = cpu_devices.resolve(config.cpu_devices, config.batch_size)
  runtime.setup(cpu_device_count)
  default_config.validate(config, jax.process_count())
  num_steps = default_config.num_train_steps(config)

  # ---------------------------------------------------------------- data (made first,
  # so bad paths and bad files fail before anything is compiled or written)
  if config.data.make_default_if_missing:
    from data_pipeline import default_data
    _on_process_0(lambda: default_data.ensure_default_dataset(config.data.root,
                                                               **config.data.default_data),
                  f"config.data.root {config.data.root}")
  train_sequences = _sequences(config, config.data.train_split, config.clip_length)
  eval_sequences = _sequences(config, config.data.eval_split)
  clip_sampler.check_train_inputs(
      train_sequences, config.batch_size, config.clip_length,
      clip_sampler.crop_shape(config.crop_size), 0, jax.process_index(),
      jax.process_count(), config.noise_std_sigma)

  # ---------------------------------------------------------------- the workdir
  # Process 0 locks it and checks the config before anything is written there (the event
  # file, Orbax's managers, which clean temporary folders as soon as they exist).
  lock, changes = _own_workdir(workdir_path, config, allow_config_change)
  with contextlib.ExitStack() as cleanup:
    if lock is not None:
      cleanup.callback(lock.release)
    return _train_in(config, workdir_path, num_steps, train_sequences, eval_sequences,
                     cpu_device_count, changes, cleanup)


def _on_process_0(work: Callable[[], Any], what: str) -> Any:
  """`work()` on process 0 only; every process learns whether it failed before any goes
  on, so a failure stops all of them instead of leaving the others in a barrier."""
  result, error = None, None
  if jax.process_index() == 0:
    try:
      result = work()
    except Exception as e:  # raised below, once the others know
      error = e
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    failed = bool(multihost_utils.broadcast_one_to_all(np.int32(error is not None)))
    if failed and error is None:
      error = TrainingError(f"{what}: refused by process 0 (its error says why)")
  if error is not None:
    raise error
  return result


def _own_workdir(workdir_path: Path, config: ml_collections.ConfigDict,
                 allow_config_change: bool
                 ) -> tuple[run_dir.Lock | None, dict[str, tuple[Any, Any]]]:
  """Process 0's lock and config changes, known to every process before any goes on."""

  def own():
    lock = run_dir.claim(workdir_path)
    try:
      return lock, run_dir.config_changes(workdir_path, recorded_config(config),
                                          allow_config_change)
    except BaseException:
      lock.release()
      raise
  owned = _on_process_0(own, f"--workdir {workdir_path}")
  return owned if owned is not None else (None, {})


def recorded_config(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """What the workdir records of the run (config.json): the config, and the version of
  the clip sampler whose stream of batches it trains on (workdir.RECORDED_FIELDS)."""
  return dict(config.to_dict(), clip_sampler_version=clip_sampler.VERSION)


def _train_in(config: ml_collections.ConfigDict, workdir_path: Path, num_steps: int,
              train_sequences: list, eval_sequences: list, cpu_device_count: int,
              changes: dict[str, tuple[Any, Any]],
              cleanup: contextlib.ExitStack) -> dict[str, Any]:
  """train_and_evaluate once the workdir is this run's (`cleanup`: run at its end)."""
  workdir = str(workdir_path)
  is_main = jax.process_index() == 0

  # ---------------------------------------------------------------- logging
  # The numpy loader runs without TensorFlow: its metrics go through tensorboardX.
  loader = loaders.resolve_loader(config.data.loader)
  use_tensorflow = loader == "tfdata"
  logging.info("Training input: %s", loader)
  writer = writers.create_writer(workdir, just_logging=not is_main,
                                 use_tensorflow=use_tensorflow)
  cleanup.callback(writer.close_quietly)  # on any way out (a full disk: no traceback)

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
  model = create_model(config)
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
  if is_main:  # after the resume, so a refused workdir keeps its config record
    run_dir.record_config(workdir_path, recorded_config(config), changes, start_step)
    for field, (old, new) in changes.items():
      logging.info("config.%s changed: %r -> %r (recorded in %s)", field, old, new,
                   workdir_path / run_dir.HISTORY_FILE)
    writer.write_hparams({k: v for k, v in config.to_dict().items()
                          if isinstance(v, (int, float, str, bool))})

  train_iter = loaders.make_train_iterator(
      loader, train_sequences, batch_size=config.batch_size, clip_length=config.clip_length,
      crop_size=config.crop_size, seed=config.seed, start_step=start_step,
      process_index=jax.process_index(), process_count=jax.process_count(),
      noise_std_sigma=config.noise_std_sigma, augment=config.augment,
      augment_colour=config.augment_colour,
      cache_frames=config.data.cache_frames)
  # Closed on any way out: a tf.data iterator left to the interpreter's shutdown (an error
  # keeps this frame alive) logs a failure of its own after the run's error line.
  cleanup.callback(getattr(train_iter, "close", lambda: None))

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
      if step == start_step + 1:  # compiled before dispatch: the ETA counts from here
        first_step_done = time.perf_counter()
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
          timed = step - start_step - 1  # steps since the first one
          eta = (f", ETA {files.hms((num_steps - step) * (now - first_step_done) / timed)}"
                 if timed else "")
          logging.info("step %d/%d (%.0f%%)%s", step, num_steps, 100 * step / num_steps, eta)
        history, last_log_time, last_log_step = [], now, step

      if evaluates:
        try:
          summary = protocol.evaluate_sequences(
              model, _host_params(state.params), eval_sequences,
              skip_first=config.eval.skip_first, skip_last=config.eval.skip_last,
              max_sequences=config.eval.max_sequences, max_frames=config.eval.max_frames,
              keep_example=True)
        except protocol.EvalError as e:  # an unstable moment of training: go on
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
  try:
    with termination.deferred_interrupts():  # the last saves finish first
      checkpoints.wait()
      checkpoints.close()
      writer.flush()

    # -------------------------------------------------------------- final evaluation
    if not config.final_eval:
      return {}
    return _final_evaluation(config, workdir_path, model, state.params, eval_sequences)
  except KeyboardInterrupt as e:
    raise Interrupted(e, f"training is complete (checkpoints in {workdir_path / 'checkpoints'})"
                      "; its final evaluation was stopped: run the same command to evaluate "
                      "again") from None


def _final_evaluation(config: ml_collections.ConfigDict, workdir_path: Path, model: IFIRNN,
                      params: Params, eval_sequences: list) -> dict[str, Any]:
  """The full evaluation at the end of training: the table, eval/ and before_after.png."""
  is_main = jax.process_index() == 0
  settings = [protocol.Setting(model.iterations)]
  skips = dict(skip_first=config.eval.skip_first, skip_last=config.eval.skip_last)
  results = protocol.frame_results(model, _host_params(params), eval_sequences,
                                     settings, **skips)
  if is_main:
    results = reports.with_progress(results, sum(s.num_frames for s in eval_sequences), 1)
  summary = protocol.summarize(results, settings, keep_example=True, **skips)[0]
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
def main(argv: list[str]) -> int:
  """Kept short (flax examples/imagenet main.py): flags, platform set-up, then the run;
  returns the exit status (`termination.run_command`), which absl's app.run exits with."""
  del argv
  from data_pipeline.errors import DataError
  from ifirnn_jax import cli
  config = _FLAGS.config
  workdir = _FLAGS.workdir or str(Path("workdirs") / Path(_FLAGS["config"].config_filename
                                                         .split(":")[0]).stem)
  cli.quiet_library_logs()
  cli.initialize_distributed(_FLAGS.coordinator_address, _FLAGS.num_processes,
                             _FLAGS.process_id)

  def work() -> None:  # the final evaluation's summary is printed, not an exit status
    train_and_evaluate(config, workdir, allow_config_change=_FLAGS.allow_config_change)

  return termination.run_command(
      work,
      (default_config.ConfigError, DataError, TrainingError, ckpt.CheckpointError,
       protocol.EvalError, run_dir.WorkdirError, writers.WriteError,
       OSError),  # OSError: e.g. a read-only data root or workdir
      "training had not started")


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a bad flag or config file as one `error:` line (status 2)."""
  import sys
  from absl import flags
  from ifirnn_jax import cli
  if cli.wants_help(argv):
    print(cli.absl_help(__doc__))
    sys.exit(0)
  config_arg = next((a.split("=", 1)[1] if "=" in a else argv[i + 1]
                     for i, a in enumerate(argv[1:], 1)
                     if a.split("=", 1)[0] == "--config" and ("=" in a or i + 1 < len(argv))),
                    None)
  if config_arg is not None and not Path(config_arg.split(":")[0]).is_file():
    termination.exit_usage_error(f"--config {config_arg}: no such config file")
  try:
    rest = flags.FLAGS(argv)
    _ = flags.FLAGS.config  # loads the config file; a broken one raises here
  except flags.Error as e:
    termination.exit_usage_error(str(e))
  except (AttributeError, KeyError) as e:  # --config.<field> that the config lacks
    field = str(e).strip("\"'")
    termination.exit_usage_error(f"--config.{field}: the config has no field {field!r}")
  except Exception as e:  # an override of the wrong type, a config file that fails, ...
    termination.exit_usage_error(f"--config {config_arg}: {' '.join(str(e).split())[:300]}")
  return rest


if __name__ == "__main__":
  from absl import app, flags
  from ml_collections import config_flags

  _FLAGS = flags.FLAGS
  config_flags.DEFINE_config_file("config", None, "Required: the experiment config file, "
                                  "configs/<name>.py or configs/<name>.py:tiny; change its "
                                  "fields with --config.FIELD=VALUE.", lock_config=True)
  flags.DEFINE_string("workdir", None, "Where checkpoints, metrics and results go "
                      "(default: workdirs/<config file name>).")
  flags.DEFINE_string("coordinator_address", None, "Multi-host: host:port of process 0 "
                      "(default: auto-detected under SLURM; none: one process).")
  flags.DEFINE_integer("num_processes", None, "Multi-host: number of processes "
                       "(default: SLURM's count).")
  flags.DEFINE_integer("process_id", None, "Multi-host: this process's index, from 0 "
                       "(default: SLURM's).")
  flags.DEFINE_bool("allow_config_change", False, "Resume a workdir with a config that "
                    "changes what is trained (model, data, batch, seed, optimizer, ...); "
                    "the change is recorded in <workdir>/config_history.jsonl.")
  flags.mark_flags_as_required(["config"])
  app.run(main, flags_parser=_parse_flags)
