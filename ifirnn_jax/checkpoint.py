"""Orbax checkpoints of a training run, and loading a trained model from its workdir.

Layout of a workdir:
  config.json            the run's full config (written once, atomically)
  checkpoints/<step>/    the last `keep_checkpoints` training states (params, Adam, step)
  best/<step>/           the parameters with the best validation PSNR so far
Each checkpoint also holds the model's architecture as JSON, so it is self-describing.
Orbax writes to a temporary folder and renames it when complete, so a run killed at any
moment leaves only whole checkpoints behind.
"""

from __future__ import annotations

import contextlib
import logging as py_logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from absl import logging

from ifirnn_jax.models import IFIRNN, RUNTIME_FIELDS, Params


class CheckpointError(Exception):
  """A workdir with no usable checkpoint, or one of another model."""


class _DropReadOnlyNotice(py_logging.Filter):
  """Drops orbax's "Given directory is read only" notice: loading reads, as asked."""

  def filter(self, record: py_logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Given directory is read only")


def _manager(directory: Path, *, max_to_keep: int | None = None, best: bool = False,
             read_only: bool = False) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep, create=not read_only, read_only=read_only,
      cleanup_tmp_directories=not read_only,
      save_interval_steps=0 if read_only else 1,
      best_fn=(lambda metrics: metrics["psnr"]) if best else None, best_mode="max",
      keep_checkpoints_without_metrics=not best,
      # The periodic and best managers may save the same step at once: distinct barrier
      # names keep their multi-process synchronisation apart.
      multiprocessing_options=ocp.options.MultiprocessingOptions(
          barrier_sync_key_prefix="best" if best else "periodic"))
  return ocp.CheckpointManager(directory.resolve(), options=options)


class RunCheckpoints:
  """The periodic and best-PSNR checkpoint managers of one training run."""

  def __init__(self, workdir: str | os.PathLike, keep: int):
    self.workdir = Path(workdir)
    try:
      self.periodic = _manager(self.workdir / "checkpoints", max_to_keep=keep)
      self.best = _manager(self.workdir / "best", max_to_keep=1, best=True)
    except OSError as e:
      raise CheckpointError(f"{self.workdir}: cannot hold checkpoints "
                            f"({e.strerror or _reason(e)})") from None

  def latest_step(self) -> int | None:
    return self.periodic.latest_step()

  def save(self, step: int, params: Params, train: Any, model: IFIRNN) -> None:
    """`train` is the rest of the training state (step, optimizer state)."""
    with _save_errors(self.workdir / "checkpoints", step):
      self.periodic.save(step, args=ocp.args.Composite(
          params=ocp.args.StandardSave(params), train=ocp.args.StandardSave(train),
          model=ocp.args.JsonSave(_model_json(model))))

  def save_best(self, step: int, params: Params, model: IFIRNN, psnr: float) -> None:
    with _save_errors(self.workdir / "best", step):
      self.best.save(step, args=ocp.args.Composite(
          params=ocp.args.StandardSave(params), model=ocp.args.JsonSave(_model_json(model))),
                     metrics={"psnr": float(psnr)})

  def restore_latest(self, model: IFIRNN, abstract_params: Any,
                     abstract_train: Any) -> tuple[int, Any, Any] | None:
    """(step, params, train) of the latest checkpoint that restores, or None if none.

    A damaged checkpoint is moved to <workdir>/damaged_checkpoints/<step> (with a
    warning) and the one before it is tried. Checkpoints of another model than `model`
    raise CheckpointError.
    """
    directory = self.workdir / "checkpoints"
    _mute_failed_restore_echoes()  # before: the echoes can come before the error does
    for step in sorted(self.periodic.all_steps(), reverse=True):
      try:
        stored = _restore_description(self.periodic, directory, step)
        _check_same_model(stored, model, directory / str(step))
        return (step, *self.restore(step, abstract_params, abstract_train))
      except CheckpointError as e:
        if "damaged" not in str(e):
          raise
        reason = str(e)
      except Exception as e:  # tensorstore raises bare Exceptions for damaged files
        reason = f"{directory}/{step}: damaged checkpoint ({_reason(e)})"
      aside = self.workdir / "damaged_checkpoints" / str(step)
      try:
        aside.parent.mkdir(exist_ok=True)
        os.replace(directory / str(step), aside)
      except OSError as e:
        raise CheckpointError(f"{reason}; cannot move it aside to {aside} "
                              f"({e.strerror}): move it away to resume") from None
      self.periodic.reload()
      logging.warning("%s; moved it to %s, resuming from the checkpoint before it", reason,
                      aside)
    return None

  def restore(self, step: int, abstract_params: Any, abstract_train: Any) -> tuple[Any, Any]:
    """(params, train) at `step`, placed as the abstract trees' shardings say."""
    restored = self.periodic.restore(step, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(abstract_params),
        train=ocp.args.StandardRestore(abstract_train)))
    return restored["params"], restored["train"]

  def wait(self) -> None:
    with _save_errors(self.workdir, None):
      self.periodic.wait_until_finished()
      self.best.wait_until_finished()

  def close(self) -> None:
    self.periodic.close()
    self.best.close()


@contextlib.contextmanager
def _save_errors(directory: Path, step: int | None) -> Iterator[None]:
  """Any failure to save (disk full, ...) as one CheckpointError naming `directory`."""
  try:
    yield
  except Exception as e:  # Orbax wraps OSErrors of its writer threads in other types
    what = "a checkpoint" if step is None else f"the checkpoint of step {step}"
    errno_error = e if isinstance(e, OSError) else next(
        (c for c in _causes(e) if isinstance(c, OSError)), None)
    reason = errno_error.strerror if errno_error and errno_error.strerror else _reason(e)
    raise CheckpointError(f"{directory}: cannot save {what} ({reason}); the checkpoints "
                          f"saved before it are complete") from None


def _causes(error: BaseException) -> Iterator[BaseException]:
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    yield error
    error = error.__cause__ or error.__context__


def _check_same_model(stored: dict[str, Any], model: IFIRNN, where: Path) -> None:
  """Refuses to resume checkpoints of another model (architecture, N, output mode)."""
  wanted = _model_json(model)
  differ = {k: (stored[k], wanted[k]) for k in wanted if k in stored and stored[k] != wanted[k]}
  if differ:
    listed = ", ".join(f"{k} {a} (config: {b})" for k, (a, b) in differ.items())
    raise CheckpointError(f"{where}: the workdir holds checkpoints of another model "
                          f"({listed}); train this config in a new --workdir, or resume with "
                          f"the config this workdir was trained with")


def _model_json(model: IFIRNN) -> dict[str, Any]:
  return model.description()


def load_checkpoint(workdir: str | os.PathLike, step: int | None = None, *,
                    best: bool = False, **overrides: Any) -> tuple[IFIRNN, Params]:
  """(model, params) of a training run: the latest checkpoint, `step`, or the best one.

  `overrides` set run-time model fields (e.g. iterations=4, compute_dtype='bfloat16').
  The params are plain arrays on the default device, ready for `model.deblur`.
  """
  workdir = Path(workdir)
  directory = workdir / ("best" if best else "checkpoints")
  if not directory.is_dir():
    raise CheckpointError(f"{workdir}: no {'best' if best else 'periodic'} checkpoints "
                          f"(no folder {directory})")
  absl_logger, notice_filter = py_logging.getLogger("absl"), _DropReadOnlyNotice()
  absl_logger.addFilter(notice_filter)  # orbax logs it through absl for every read-only manager
  try:
    manager = _manager(directory, read_only=True)
  finally:
    absl_logger.removeFilter(notice_filter)
  try:
    steps = manager.all_steps()
    if not steps:
      raise CheckpointError(f"{directory}: no complete checkpoint in it")
    if step is None:
      step = manager.best_step() if best else manager.latest_step()
      step = steps[-1] if step is None else step
    if step not in steps:
      raise CheckpointError(f"{directory}: no checkpoint at step {step} (have {sorted(steps)})")
    description = _restore_description(manager, directory, step)
    fields = {k: v for k, v in description.items() if k not in RUNTIME_FIELDS}
    fields.update(overrides)
    try:
      model = IFIRNN.from_fields(fields)
    except (TypeError, ValueError) as e:
      raise CheckpointError(f"{directory}/{step}: bad model description ({e})") from None
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
                            jax.eval_shape(model.init, jax.random.key(0)))
    _mute_failed_restore_echoes()  # before: the echoes can come before the error does
    try:
      params = manager.restore(step, args=ocp.args.Composite(
          params=ocp.args.StandardRestore(abstract)))["params"]
    except Exception as e:  # tensorstore raises bare Exceptions for damaged files
      raise CheckpointError(f"{directory}/{step}: cannot restore the parameters of "
                            f"{model.name}: the checkpoint is damaged or of another model "
                            f"({_reason(e)})") from None
  finally:
    manager.close()
  return model, params


def _mute_failed_restore_echoes() -> None:
  """Keeps the console to one line after a restore failed on a damaged file.

  Orbax reads the arrays in concurrent coroutines: when one fails, the others' errors
  ("Encountered error while reading array index", "Event loop is closed") reach Python
  later as unraisable exceptions or asyncio's "never retrieved" log records, each
  printed with a traceback. This drops those (the error that ended the restore is
  already reported) and passes on anything else.
  """
  previous = sys.unraisablehook
  if getattr(previous, "mutes_failed_restores", False):
    return
  py_logging.getLogger("asyncio").addFilter(  # "Task exception was never retrieved"
      lambda record: "exception was never retrieved" not in record.getMessage())

  def hook(unraisable):
    text = str(unraisable.exc_value)
    if not (text.startswith("Encountered error while reading array index")
            or text == "Event loop is closed"):
      previous(unraisable)
  hook.mutes_failed_restores = True
  sys.unraisablehook = hook


def _reason(error: BaseException, limit: int = 200) -> str:
  """The first line of an exception's message, at most `limit` characters."""
  text = (str(error).strip() or type(error).__name__).splitlines()[0]
  return text if len(text) <= limit else text[:limit] + "..."


def _restore_description(manager: ocp.CheckpointManager, directory: Path,
                         step: int) -> dict[str, Any]:
  """The model description (JSON object) stored with checkpoint `step`."""
  try:
    description = manager.restore(step, args=ocp.args.Composite(
        model=ocp.args.JsonRestore()))["model"]
  except Exception as e:  # a damaged or missing file: JSON, OS or Orbax errors
    raise CheckpointError(f"{directory}/{step}: damaged checkpoint, its model description "
                          f"cannot be read ({_reason(e)})") from None
  if not isinstance(description, dict):
    raise CheckpointError(f"{directory}/{step}: damaged checkpoint, its model description "
                          f"is not a JSON object")
  return description
