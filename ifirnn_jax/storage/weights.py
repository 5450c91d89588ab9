"""Weight files: the spec's PyTorch names and layouts, stored as safetensors.

Flax kernels are `[kh, kw, in, out]` (conv and transposed conv alike) and Dense kernels
`[in, out]`; PyTorch stores Conv2d `[out, in, kh, kw]`, ConvTranspose2d
`[in, out, kh, kw]` and Linear `[out, in]`. The conversion is a transpose plus a
renaming (`cells_0/F_R_3/conv1/kernel` <-> `cells.0.F_R.3.conv1.weight`), so it is
lossless both ways.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import traverse_util
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from data_pipeline.safe_io import files
from ifirnn_jax.model.network import IFIRNN, RUNTIME_FIELDS, Params

FORMAT = "ifirnn-jax/1"
_INDEXED = re.compile(r"^(cells|F_B|F_R|F_h|F_L)_(\d+)$")
_TORCH_INDEXED = re.compile(r"^(cells|F_B|F_R|F_h|F_L)\.(\d+)$")
_TRANSPOSED_CONV = re.compile(r"\.F_L\.[01]\.weight$")


class WeightsError(Exception):
  """A weight file that is missing, unreadable, or does not fit the model."""


def _torch_name(path: tuple[str, ...]) -> str:
  parts = [_INDEXED.sub(r"\1.\2", p) for p in path]
  parts[-1] = {"kernel": "weight"}.get(parts[-1], parts[-1])
  return ".".join(parts)


def _flax_path(name: str) -> tuple[str, ...]:
  parts = re.sub(r"(cells|F_B|F_R|F_h|F_L)\.(\d+)", r"\1_\2", name).split(".")
  parts[-1] = {"weight": "kernel"}.get(parts[-1], parts[-1])
  return tuple(parts)


def _to_torch_layout(name: str, array: np.ndarray) -> np.ndarray:
  if not name.endswith(".weight"):
    return array
  if array.ndim == 2:  # Dense [in, out] -> Linear [out, in]
    return array.T
  if _TRANSPOSED_CONV.search(name):  # [kh, kw, in, out] -> [in, out, kh, kw]
    return array.transpose(2, 3, 0, 1)
  return array.transpose(3, 2, 0, 1)  # [kh, kw, in, out] -> [out, in, kh, kw]


def _to_flax_layout(name: str, array: np.ndarray) -> np.ndarray:
  if not name.endswith(".weight"):
    return array
  if array.ndim == 2:
    return array.T
  if _TRANSPOSED_CONV.search(name):
    return array.transpose(2, 3, 0, 1)
  return array.transpose(2, 3, 1, 0)


def to_torch_state_dict(params: Params) -> dict[str, np.ndarray]:
  """Flax params -> {PyTorch name: float32 array in PyTorch layout}."""
  flat = traverse_util.flatten_dict(jax.device_get(params))
  state = {}
  for path, value in flat.items():
    name = _torch_name(path)
    state[name] = np.ascontiguousarray(_to_torch_layout(name, np.asarray(value, np.float32)))
  return state


def expected_shapes(model: IFIRNN) -> dict[str, tuple[int, ...]]:
  """{PyTorch name: shape} of `model`'s parameters (no computation)."""
  shapes = jax.eval_shape(model.init, jax.random.key(0))
  flat = traverse_util.flatten_dict(shapes)
  out = {}
  for path, value in flat.items():
    name = _torch_name(path)
    dummy = np.empty(value.shape, np.float32)  # zero-cost view for the layout's shape
    out[name] = _to_torch_layout(name, dummy).shape
  return out


def from_torch_state_dict(state: dict[str, np.ndarray], model: IFIRNN,
                          source: str = "weights") -> Params:
  """{PyTorch name: array} -> Flax params for `model`; WeightsError if they do not fit."""
  expected = expected_shapes(model)
  missing = sorted(set(expected) - set(state))
  unexpected = sorted(set(state) - set(expected))
  problems = []
  if missing:
    problems.append(f"missing {len(missing)} tensors (e.g. {', '.join(missing[:3])})")
  if unexpected:
    problems.append(f"{len(unexpected)} unexpected tensors (e.g. {', '.join(unexpected[:3])})")
  wrong = [f"{n}: file {tuple(state[n].shape)} vs model {expected[n]}"
           for n in sorted(set(expected) & set(state)) if tuple(state[n].shape) != expected[n]]
  if wrong:
    problems.append(f"{len(wrong)} shape mismatches (e.g. {'; '.join(wrong[:3])})")
  if problems:
    raise WeightsError(f"{source} does not fit the model {model.name} "
                       f"{model.shape_fields()}: " + "; ".join(problems))
  _check_values(state, source)
  flat = {_flax_path(n): np.asarray(_to_flax_layout(n, np.asarray(a, np.float32)))
          for n, a in state.items()}
  return jax.tree.map(jax.numpy.asarray, traverse_util.unflatten_dict(flat))


def _check_values(state: dict[str, np.ndarray], source: str) -> None:
  """WeightsError for a tensor that is not floating point or holds NaN or inf (such a
  model runs, but its outputs are not finite)."""
  for name in sorted(state):
    array = np.asarray(state[name])
    if not jax.numpy.issubdtype(array.dtype, jax.numpy.floating):
      raise WeightsError(f"{source}: tensor {name} has dtype {array.dtype}; weights must be "
                         f"floating point (float32, float16 or bfloat16)")
    bad = int(array.size - np.count_nonzero(np.isfinite(array)))
    if bad:
      raise WeightsError(f"{source}: tensor {name} holds {bad} NaN or infinite values of "
                         f"{array.size}; the weights are damaged (e.g. a diverged training)")


def save_weights(params: Params, path: str | os.PathLike, model: IFIRNN | None = None) -> Path:
  """Writes params as safetensors with the spec's PyTorch names and layouts (atomically).

  With `model`, every field that changes its outputs (`IFIRNN.description`: the
  architecture, iterations, residual_output) is stored in the file's metadata as JSON.
  """
  path = Path(path)
  metadata = {"format": FORMAT}
  if model is not None:
    metadata["model"] = json.dumps(model.description())
  state = to_torch_state_dict(params)
  path.parent.mkdir(parents=True, exist_ok=True)
  with files.atomic_path(path) as temporary:
    save_file(state, str(temporary), metadata=metadata)
  return path


def _torch_pickle(path: Path) -> bool:
  """Whether `path` is a PyTorch pickle (torch.save's zip archive, or a bare pickle),
  judged from its first bytes and zip entry names only: it is never unpickled."""
  try:
    with open(path, "rb") as f:
      head = f.read(4)
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
      return True  # a pickle's PROTO opcode
    if head == b"PK\x03\x04":
      with zipfile.ZipFile(path) as archive:
        return any(n == "data.pkl" or n.endswith("/data.pkl") for n in archive.namelist())
  except (OSError, zipfile.BadZipFile):
    pass
  return False


def _read(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
  path = Path(path)
  if path.is_dir():
    run = (path / "checkpoints").is_dir() or (path / "best").is_dir()
    raise WeightsError(f"{path}: is a folder, not a weight file" + (
        "; it holds a training run: pass it with --workdir (in Python: ifr.load_checkpoint)"
        if run else ""))
  if not path.is_file():
    raise WeightsError(f"{path}: weight file not found")
  try:
    state = load_file(path)
    with open(path, "rb") as f:
      header_len = int.from_bytes(f.read(8), "little")
      header = json.loads(f.read(header_len))
  except (SafetensorError, ValueError, OSError) as e:
    if _torch_pickle(path):
      raise WeightsError(
          f"{path}: this is a PyTorch pickle, not a safetensors file; it is not loaded "
          f"(unpickling can run code). Convert its state dict in PyTorch: python -c "
          f"\"import torch; from safetensors.torch import save_file; save_file(torch.load("
          f"'{path}', weights_only=True), 'model.safetensors')\" (tensor names as in "
          f"docs/architecture.md, PyTorch weight names; that file has no model description, "
          f"so give N with --iterations, or iterations= in Python)") from None
    raise WeightsError(f"{path}: not a readable safetensors weight file ({e})") from None
  metadata = header.get("__metadata__", {}) or {}
  _described(metadata, str(path))  # a broken description is refused, whatever the caller
  return state, metadata


def _described(metadata: dict[str, str] | None, source: str) -> dict[str, Any]:
  """The fields stored in the metadata's "model" JSON ({} without one)."""
  if not metadata or "model" not in metadata:
    return {}
  try:
    described = json.loads(metadata["model"])
  except json.JSONDecodeError as e:
    raise WeightsError(f"{source}: metadata 'model' is not valid JSON ({e}); the file's "
                       f"model description is damaged") from None
  if not isinstance(described, dict):
    raise WeightsError(f"{source}: metadata 'model' is not a JSON object "
                       f"(got {type(described).__name__})")
  return described


def infer_model(state: dict[str, np.ndarray], metadata: dict[str, str] | None = None,
                source: str = "weights", **overrides: Any) -> IFIRNN:
  """The IFIRNN whose parameter shapes `state` has.

  The fields the tensors do not fix (iterations, residual_output) come from the
  metadata's "model" JSON; a file without one (an older or foreign file) gets the
  IFIRNN defaults (iterations 3, residual_output true). Values are checked as the
  IFIRNN checks them (e.g. iterations in 1..MAX_ITERATIONS), naming the file.
  """
  fields = {k: v for k, v in _described(metadata, source).items() if k not in RUNTIME_FIELDS}
  try:
    cells = sorted({int(n.split(".")[1]) for n in state if n.startswith("cells.")})
  except ValueError:
    bad = next(n for n in state if n.startswith("cells.") and not n.split(".")[1].isdigit())
    raise WeightsError(f"{source}: not an IFI-RNN weight file (tensor {bad!r}: "
                       f"'cells.' is not followed by a cell number)") from None

  def out_channels(name: str) -> int:
    if name not in state:
      raise WeightsError(f"{source}: not an IFI-RNN weight file (no tensor {name!r})")
    if np.ndim(state[name]) == 0:
      raise WeightsError(f"{source}: tensor {name} is a scalar (shape ()), not the "
                         f"weight array [out, in, ...] the model needs")
    return np.shape(state[name])[0]

  last = f"cells.{len(cells) - 1}"
  fields.update(
      cells=len(cells),
      n1=out_channels("cells.0.F_B.0.weight"),
      n2=out_channels("cells.0.F_B.1.weight"),
      n3=out_channels("cells.0.F_B.2.weight"),
      nh=out_channels("cells.0.F_h.0.weight"),
      num_resblocks=len({n for n in state if n.startswith(f"{last}.F_R.") and "conv1.weight" in n}),
      gated="gate.fc1.weight" in state)
  if fields["gated"]:
    fields["gate_hidden"] = out_channels("gate.fc1.weight")
  fields.update(overrides)
  try:
    return IFIRNN.from_fields(fields)
  except (ValueError, TypeError) as e:
    raise WeightsError(f"{source}: {e}") from None


def load_weights(path: str | os.PathLike, model: IFIRNN | None = None) -> Params:
  """Reads a weight file. With `model`, refuses (WeightsError) one that does not fit it."""
  state, metadata = _read(path)
  if model is None:
    model = infer_model(state, metadata, source=str(path))
  return from_torch_state_dict(state, model, source=str(path))


def load_model(path: str | os.PathLike, **overrides: Any) -> tuple[IFIRNN, Params]:
  """(model, params) from a weight file, the architecture inferred from its tensors.

  `overrides` set run-time fields, e.g. `iterations=4` or `compute_dtype='bfloat16'`.
  """
  state, metadata = _read(path)
  model = infer_model(state, metadata, source=str(path), **overrides)
  return model, from_torch_state_dict(state, model, source=str(path))
