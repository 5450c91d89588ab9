"""Orbax checkpoints of a training run, and loading a trained model from its workdir.

Layout of a workdir:
  workdir.lock           marks the workdir; held by the training run (workdir.py)
  config.json            the run's full config (written once, atomically)
  config_history.jsonl   the config changes of later starts (workdir.py)
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
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from ifirnn_jax.model.network import IFIRNN, RUNTIME_FIELDS, Params


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


class _NoWriterThreadTracebacks(py_logging.Filter):
  """Drops Orbax's error records (with tracebacks) from its writer threads: the failure
  of a save reaches the main thread, where `_save_errors` reports it in one line."""

  def filter(self, record: py_logging.LogRecord) -> bool:
    return not ("/orbax/" in record.pathname and record.levelno >= py_logging.ERROR)


_NO_WRITER_THREAD_TRACEBACKS = _NoWriterThreadTracebacks()


class RunCheckpoints:
  """The periodic and best-PSNR checkpoint managers of one training run."""

  def __init__(self, workdir: str | os.PathLike, keep: int):
    self.workdir = Path(workdir)
    py_logging.getLogger("absl").addFilter(_NO_WRITER_THREAD_TRACEBACKS)  # once: a set
    try:
      self.periodic = _manager(self.workdir / "checkpoints", max_to_keep=keep)
      self.best = _manager(self.workdir / "best", max_to_keep=1, best=True)
    except OSError as e:
      raise CheckpointError(f"{self.workdir}: cannot hold checkpoints "
                            f"({e.strerror or _reason(e)})") from None

    # The step each manager is saving in the background: a failure found later (at the
    # next save, or at `wait`) is that step's.
    self._pending: dict[str, int | None] = {"checkpoints": None, "best": None}

  def latest_step(self) -> int | None:
    return self.periodic.latest_step()

  def _finish(self, name: str) -> None:
    """Waits for manager `name`'s save in progress; a failure names its step."""
    manager = self.periodic if name == "checkpoints" else self.best
    with _save_errors(self.workdir / name, self._pending[name]):
      manager.wait_until_finished()
    self._pending[name] = None

  def save(self, step: int, params: Params, train: Any, model: IFIRNN) -> None:
    """`train` is the rest of the training state (step, optimizer state)."""
    self._finish("checkpoints")
    with _save_errors(self.workdir / "checkpoints", step):
      self._pending["checkpoints"] = step
      self.periodic.save(step, args=ocp.args.Composite(
          params=ocp.args.StandardSave(params), train=ocp.args.StandardSave(train),
          model=ocp.args.JsonSave(_model_json(model))))

  def save_best(self, step: int, params: Params, model: IFIRNN, psnr: float) -> None:
    self._finish("best")
    with _save_errors(self.workdir / "best", step):
      self._pending["best"] = step
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
    self._finish("checkpoints")
    self._finish("best")

  def close(self) -> None:
    """Closes both managers; the absl log filter of the run goes with them."""
    try:
      self.periodic.close()
      self.best.close()
    finally:
      py_logging.getLogger("absl").removeFilter(_NO_WRITER_THREAD_TRACEBACKS)


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
    code = re.search(r"os_error_code='(\d+)'", "".join(str(c) for c in _causes(e)))
    if errno_error is None and code:  # TensorStore's errors carry the errno in their text
      reason = os.strerror(int(code.group(1)))
    complete = [s for s in complete_steps(directory) if s != step]
    kept = (f"the last complete checkpoint there is step {complete[-1]}" if complete
            else "no checkpoint there was complete before it")
    raise CheckpointError(f"{directory}: cannot save {what} ({reason}); {kept}") from None


def complete_steps(directory: Path) -> list[int]:
  """The steps of the complete checkpoints in `directory` (Orbax renames a checkpoint's
  temporary folder to its step once it is complete), in increasing order."""
  try:
    return sorted(int(p.name) for p in Path(directory).iterdir() if p.name.isdigit())
  except OSError:
    return []


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


def load_checkpoint(workdir: str | os.PathLike, step: int | str | None = None, *,
                    best: bool = False, **overrides: Any) -> tuple[IFIRNN, Params]:
  """(model, params) of a training run: the latest checkpoint, `step`, or the best one.

  As `read_checkpoint`, without the step number.
  """
  model, params, _ = read_checkpoint(workdir, step, best=best, **overrides)
  return model, params


def read_checkpoint(workdir: str | os.PathLike, step: int | str | None = None, *,
                    best: bool = False, **overrides: Any) -> tuple[IFIRNN, Params, int]:
  """(model, params, the step read) of a training run: the latest checkpoint, `step`, or
  the best one.

  `step`: an integer (a numpy integer or a numeric string too). A workdir may be read
  while it trains: when training's `keep_checkpoints` removes the checkpoint being read,
  the newest one is read instead (with a warning naming it); one asked for by `step`
  is then an error.
  `overrides` set run-time model fields (e.g. iterations=4, compute_dtype='bfloat16').
  The params are plain arrays on the default device, ready for `model.deblur`.
  """
  workdir = Path(workdir)
  step = _step_number(step)
  directory = workdir / ("best" if best else "checkpoints")
  if not directory.is_dir():
    raise CheckpointError(f"{workdir}: no {'best' if best else 'periodic'} checkpoints "
                          f"(no folder {directory})")
  tried: list[int] = []
  while True:
    absl_logger, notice_filter = py_logging.getLogger("absl"), _DropReadOnlyNotice()
    absl_logger.addFilter(notice_filter)  # orbax logs it for every read-only manager
    try:
      manager = _manager(directory, read_only=True)
    finally:
      absl_logger.removeFilter(notice_filter)
    try:
      steps = manager.all_steps()
      if not steps:
        raise CheckpointError(f"{directory}: no complete checkpoint in it")
      wanted = step
      if wanted is None:
        wanted = manager.best_step() if best else manager.latest_step()
        wanted = steps[-1] if wanted is None else wanted
      if wanted not in steps:
        raise CheckpointError(f"{directory}: no checkpoint at step {wanted} "
                              f"(have {sorted(steps)})")
      try:
        model, params = _read(manager, directory, wanted, overrides)
      except CheckpointError:
        if (directory / str(wanted)).exists() or wanted in tried:
          raise
        # Removed while being read (a training run keeps only its last checkpoints).
        if step is not None:
          raise CheckpointError(
              f"{directory}/{wanted}: removed while being read (the training run there "
              f"keeps only its last checkpoints); choose a step of "
              f"{complete_steps(directory)}") from None
        tried.append(wanted)
        logging.warning("%s/%d was removed while being read (training keeps only its last "
                        "checkpoints): reading the newest one instead", directory, wanted)
        continue
    finally:
      manager.close()
    if tried:
      logging.warning("using checkpoint step %d of %s", wanted, directory)
    return model, params, wanted


def _step_number(step: Any) -> int | None:
  """`step` as an int: ints, numpy integers and strings of digits are accepted."""
  if step is None:
    return None
  if isinstance(step, str) and step.strip().isdigit():
    return int(step)
  if isinstance(step, (int, np.integer)) and not isinstance(step, bool) and step >= 0:
    return int(step)
  raise CheckpointError(f"step must be a checkpoint's step number (an integer >= 0), "
                        f"got {step!r}")


def _read(manager: ocp.CheckpointManager, directory: Path, step: int,
          overrides: dict[str, Any]) -> tuple[IFIRNN, Params]:
  """The model and params of checkpoint `step`."""
  description = _restore_description(manager, directory, step)
  fields = {k: v for k, v in description.items() if k not in RUNTIME_FIELDS}
  fields.update({k: int(v) if isinstance(v, np.integer) else v for k, v in overrides.items()})
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
  # TensorStore's messages end with the repr of a method, not its text.
  text = re.sub(r"\s*See full TensorStore details: <bound method .*$", "", text)
  text = re.sub(r"<bound method [^>]*>?", "", text).strip() or type(error).__name__
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
