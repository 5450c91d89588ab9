"""What a benchmark run depends on (`BenchmarkSettings`), its models, devices and environment."""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any

import jax

from ifirnn_jax.training import default_config
from ifirnn_jax.model import network
from ifirnn_jax.model.network import IFIRNN

TABLE1_MODELS = ("C1H1", "C1H2", "C1H3", "C1H4", "C2H1", "C2H2", "C2H3", "C2H4")
WIDTH_FIELDS = ("n1", "n2", "n3", "nh", "num_resblocks")  # the order of --widths
SPEC_WIDTHS = tuple(network.SPEC_WIDTHS[k] for k in WIDTH_FIELDS)
SMALL_TRAIN_WIDTHS = (16, 32, 48, 16, 4)  # docs/benchmarks.md's small model

# Per-mode defaults of the options left as None on the command line.
MODE_DEFAULTS = {
    "inference": dict(models=",".join(TABLE1_MODELS), widths=SPEC_WIDTHS, height=540,
                      width=960, batch=1, frames=4, repeats=10, scan_unroll="1"),
    "train": dict(models="C2H2", widths=SMALL_TRAIN_WIDTHS, height=64, width=64, batch=4,
                  frames=6, repeats=10, scan_unroll="full,1"),
}


class BenchmarkError(Exception):
  """Options that cannot be benchmarked (unknown model, bad widths, missing device...)."""


@dataclasses.dataclass(frozen=True)
class BenchmarkSettings:
  """Everything a run depends on (the parsed command line)."""

  mode: str
  models: tuple[str, ...]
  widths: tuple[int, int, int, int, int]
  height: int
  width: int
  batch: int
  frames: int
  repeats: int
  warmup: int
  dtype: str
  conv_impl: str
  device: str
  torch: bool
  torch_threads: int
  scan_unroll: tuple[int | bool, ...]
  isolate: bool
  matmul_size: int
  seed: int
  out: str
  data: str | None = None        # train: a dataset whose input pipeline is timed as well
  remat: bool = False            # IFIRNN.remat: recompute each frame in the backward pass
  layout: str = "gopro"
  blur_dir: str = "blur_gamma"
  cache_frames: bool = False
  processes: int = 1             # train, CPU: our step as this many processes, one core each
  cpu_devices: int = 1           # train, CPU, one process: our step over this many devices


def model_at_widths(name: str, widths: tuple[int, int, int, int, int],
                    **fields: Any) -> IFIRNN:
  """default_config.model_named of `name` at `widths` (n1, n2, n3, nh, num_resblocks)."""
  n1, n2, n3, nh, nb = widths
  try:
    return default_config.model_named(name, n1=n1, n2=n2, n3=n3, nh=nh, num_resblocks=nb,
                                      **fields)
  except default_config.ConfigError as e:
    raise BenchmarkError(str(e).replace("config.model.name", "--models")) from None


def make_model(name: str, settings: BenchmarkSettings, scan_unroll: int | bool = 1) -> IFIRNN:
  """The IFIRNN called `name` (C1HN / C2HN, -reg allowed) at the settings' widths and dtype."""
  return model_at_widths(name, settings.widths, compute_dtype=settings.dtype,
                     conv_impl=settings.conv_impl, scan_unroll=scan_unroll,
                     remat=settings.remat)


def torch_architecture(model: IFIRNN) -> dict[str, Any]:
  return dict(cells=model.cells, iterations=model.iterations, n1=model.n1, n2=model.n2,
              n3=model.n3, nh=model.nh, num_resblocks=model.num_resblocks,
              gated=model.gated, gate_hidden=model.gate_hidden,
              residual_output=model.residual_output)


def select_device(platform: str) -> jax.Device:
  try:
    return jax.devices(platform)[0]
  except RuntimeError as e:
    raise BenchmarkError(f"--device {platform}: no such JAX device here ({e})") from None


def environment(device: jax.Device) -> dict[str, Any]:
  env = {"jax": jax.__version__, "backend": device.platform,
         "device_kind": device.device_kind, "cpu_count": os.cpu_count(),
         "python": sys.version.split()[0],
         # 2 MiB pages change CPU timings (runtime/huge_pages.py); both frameworks run under them.
         "glibc_tunables": os.environ.get("GLIBC_TUNABLES"),
         # None (JAX's default) lets GPUs run float32 convs and matmuls as TF32.
         "matmul_precision": jax.config.jax_default_matmul_precision}
  try:
    import torch
    env["torch"] = torch.__version__
    if device.platform != "cpu" and torch.cuda.is_available():
      env["torch_cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32
  except ImportError:
    env["torch"] = None
  return env


def torch_available() -> bool:
  try:
    import torch  # noqa: F401
    return True
  except ImportError:
    return False


def torch_device(platform: str) -> str:
  """Where the PyTorch reference runs: the CPU, or CUDA when JAX runs on a GPU."""
  if platform == "cpu":
    return "cpu"
  import torch
  if not torch.cuda.is_available():
    raise BenchmarkError(f"--torch on --device {platform}: this PyTorch has no CUDA; "
                         "use --no-torch")
  return "cuda"


def parse_widths(text: str | tuple) -> tuple[int, int, int, int, int]:
  """--widths 'n1,n2,n3,nh,nb' as five integers (a tuple passes through)."""
  if isinstance(text, tuple):
    return text
  try:
    widths = tuple(int(x) for x in text.split(","))
  except ValueError:
    widths = ()
  if len(widths) != 5 or min(widths[:4]) < 1 or widths[4] < 0:
    raise BenchmarkError(f"--widths must be five integers n1,n2,n3,nh,nb (>= 1; nb >= 0), "
                         f"got {text!r}")
  return widths  # type: ignore[return-value]


def unroll_label(unroll: int | bool) -> str:
  """A scan_unroll as --scan-unroll writes it: 'full' or the integer."""
  return "full" if unroll is True else str(unroll)
