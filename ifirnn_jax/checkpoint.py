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

import json
import os
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from ifirnn_jax.models import IFIRNN, Params


class CheckpointError(Exception):
  """A workdir with no usable checkpoint, or one of another model."""


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
    workdir = Path(workdir)
    self.periodic = _manager(workdir / "checkpoints", max_to_keep=keep)
    self.best = _manager(workdir / "best", max_to_keep=1, best=True)

  def latest_step(self) -> int | None:
    return self.periodic.latest_step()

  def save(self, step: int, params: Params, train: Any, model: IFIRNN) -> None:
    """`train` is the rest of the training state (step, optimizer state)."""
    self.periodic.save(step, args=ocp.args.Composite(
        params=ocp.args.StandardSave(params), train=ocp.args.StandardSave(train),
        model=ocp.args.JsonSave(_model_json(model))))

  def save_best(self, step: int, params: Params, model: IFIRNN, psnr: float) -> None:
    self.best.save(step, args=ocp.args.Composite(
        params=ocp.args.StandardSave(params), model=ocp.args.JsonSave(_model_json(model))),
                   metrics={"psnr": float(psnr)})

  def restore(self, step: int, abstract_params: Any, abstract_train: Any) -> tuple[Any, Any]:
    """(params, train) at `step`, placed as the abstract trees' shardings say."""
    restored = self.periodic.restore(step, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(abstract_params),
        train=ocp.args.StandardRestore(abstract_train)))
    return restored["params"], restored["train"]

  def wait(self) -> None:
    self.periodic.wait_until_finished()
    self.best.wait_until_finished()

  def close(self) -> None:
    self.periodic.close()
    self.best.close()


def _model_json(model: IFIRNN) -> dict[str, Any]:
  return dict(model.architecture(), iterations=model.iterations,
              residual_output=model.residual_output)


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
  manager = _manager(directory, read_only=True)
  try:
    steps = manager.all_steps()
    if not steps:
      raise CheckpointError(f"{directory}: no complete checkpoint in it")
    if step is None:
      step = manager.best_step() if best else manager.latest_step()
      step = steps[-1] if step is None else step
    if step not in steps:
      raise CheckpointError(f"{directory}: no checkpoint at step {step} (have {sorted(steps)})")
    description = manager.restore(step, args=ocp.args.Composite(
        model=ocp.args.JsonRestore()))["model"]
    fields = dict(description, **overrides)
    try:
      model = IFIRNN(**{k: v for k, v in fields.items() if k in IFIRNN.__dataclass_fields__})
    except (TypeError, ValueError) as e:
      raise CheckpointError(f"{directory}/{step}: bad model description ({e})") from None
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
                            jax.eval_shape(model.init, jax.random.key(0)))
    try:
      params = manager.restore(step, args=ocp.args.Composite(
          params=ocp.args.StandardRestore(abstract)))["params"]
    except (ValueError, KeyError) as e:
      raise CheckpointError(f"{directory}/{step}: parameters do not fit {model.name} ({e})") from None
  finally:
    manager.close()
  return model, params


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
  """Writes JSON to `path` through a temporary file and a rename."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f".{path.name}.tmp")
  tmp.write_text(json.dumps(data, indent=2, default=str))
  os.replace(tmp, path)
