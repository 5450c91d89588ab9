"""(model, params) from a weight file or a training run's workdir: the one loader behind
`--weights` / `--workdir` (evaluate, deblur) and train's `config.init_from`."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from ifirnn_jax.storage import checkpoint, weights
from ifirnn_jax.model.network import IFIRNN, Params


def load_network(weight_file: str | os.PathLike | None = None,
                 workdir: str | os.PathLike | None = None, *, step: int | None = None,
                 best: bool = False, model: IFIRNN | None = None,
                 **overrides: Any) -> tuple[IFIRNN, Params, int | None]:
  """(model, params, the checkpoint step read; None for a weight file), from exactly one
  of `weight_file` and `workdir` (its latest checkpoint, `step`, or the best one).

  `model`: the network the parameters must fit (train's fine-tuning); None takes the one
  the file or checkpoint describes. `overrides` set run-time fields (e.g. conv_impl).
  Raises WeightsError for a weight file, CheckpointError for a workdir (one that is not a
  folder, or whose architecture does not fit `model`), each naming the path.
  """
  if (weight_file is None) == (workdir is None):
    raise ValueError("give exactly one of a weight file and a workdir")
  read_step = None
  if weight_file is not None:
    if model is None:
      model, params = weights.load_model(weight_file)
    else:
      params = weights.load_weights(weight_file, model)
  else:
    if not Path(workdir).is_dir():
      raise checkpoint.CheckpointError(f"{workdir}: no such work directory")
    # The step actually read: training may remove the latest meanwhile.
    source, params, read_step = checkpoint.read_checkpoint(workdir, step, best=best)
    if model is not None and source.shape_fields() != model.shape_fields():
      raise checkpoint.CheckpointError(f"{workdir} holds {source.name} {source.shape_fields()}, "
                                       f"not {model.shape_fields()}")
    model = source if model is None else model
  return dataclasses.replace(model, **overrides), params, read_step
