"""Speed, FLOPs and memory of IFI-RNN: `python -m ifirnn_jax.benchmark [--mode M]`.

The command line: its parser, the `BenchmarkSettings` it makes (checked before anything is
compiled), and `run`, which dispatches to the mode's module and writes `--out`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

from data_pipeline.commandline import console, termination
from data_pipeline.safe_io import files, outputs
from data_pipeline.errors import DataError
from ifirnn_jax import runtime
from ifirnn_jax.benchmark.commands import commands_table, run_commands
from ifirnn_jax.benchmark.inference import run_inference
from ifirnn_jax.benchmark.memory import MEMORY_LENGTHS, run_memory
from ifirnn_jax.benchmark.report import inference_table, memory_table, train_table
from ifirnn_jax.benchmark.settings import (MODE_DEFAULTS, SMALL_TRAIN_WIDTHS, SPEC_WIDTHS,
                                           WIDTH_FIELDS, BenchmarkError, BenchmarkSettings, environment,
                                           make_model, parse_widths, select_device,
                                           torch_available, unroll_label)
from ifirnn_jax.benchmark.train_run import run_train
from ifirnn_jax.model.layers import CONV_IMPLS
from ifirnn_jax.runtime import cpu_devices


def _commas(values: tuple[int, ...]) -> str:
  return ",".join(map(str, values))


def _parse_unroll(text: str) -> tuple[int | bool, ...]:
  values = []
  for item in text.split(","):
    item = item.strip().lower()
    if item in ("full", "true"):
      values.append(True)
    elif item.isdigit() and int(item) >= 1:
      values.append(int(item))
    else:
      raise BenchmarkError(f"--scan-unroll takes 'full' or integers >= 1, got {text!r}")
  return tuple(values)


MODES = """modes (--mode):
  inference  frames/s, FLOPs and peak memory of deblurring with our model and the
             PyTorch reference (same weights, taking turns in one process)
  train      seconds per training step, ours and PyTorch's, and with --data the
             input pipeline's clips/s
  memory     peak RSS of the deblur command on synthetic videos of --lengths frames
  commands   the train and deblur commands' speed against their bare kernels (the
             jitted step, the model), and the share lost outside them"""


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      prog="python -m ifirnn_jax.benchmark", formatter_class=console.HelpFormatter,
      description=__doc__.split("\n\n")[0] + "\n\n" + MODES)
  p.add_argument("--mode", choices=("inference", "train", "memory", "commands"),
                 default="inference",
                 help="what to measure (modes above); memory runs 1280x720 videos with "
                 "C1H1 at widths 4,6,8,4,1 unless told otherwise; commands: the train "
                 "command's steps/s against its bare jitted step at --config, and the deblur "
                 "command's frames/s against the bare model (default C1H1 at the demo's "
                 "widths, 960x540, 120 frames)")
  p.add_argument("--config", help="commands: the train config, configs/<x>.py[:arg] "
                 "(default configs/demo.py)")
  p.add_argument("--override", action="append", default=[],
                 help="commands: a config field for the train command and its bare step, "
                 "e.g. --override batch_size=16 (repeatable)")
  p.add_argument("--lengths", default=",".join(map(str, MEMORY_LENGTHS)),
                 help="memory: video lengths in frames, comma-separated")
  p.add_argument("--models", help="comma-separated C1HN/C2HN[-reg] names (inference default: "
                 "the 8 of Table 1; train default: C2H2)")
  p.add_argument("--widths", help=f"{','.join(WIDTH_FIELDS)} (inference default "
                 f"{_commas(SPEC_WIDTHS)}; train default {_commas(SMALL_TRAIN_WIDTHS)})")
  p.add_argument("--height", type=int, help="frame height, multiple of 4 (default 540; train 64)")
  p.add_argument("--width", type=int, help="frame width, multiple of 4 (default 960; train 64)")
  p.add_argument("--batch", type=int, help="clips per batch (default 1; train 4)")
  p.add_argument("--frames", type=int, help="frames per clip (default 4; train 6); "
                 "inference: 0 skips the clip-throughput measurement")
  p.add_argument("--repeats", type=int, help="timed frames (inference; the clip runs "
                 "ceil(repeats / (batch * frames)) times) or timed steps (train); default 10")
  p.add_argument("--warmup", type=int, default=1, help="untimed calls after compiling")
  p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                 help="compute dtype of our model (parameters stay float32; PyTorch float32)")
  p.add_argument("--remat", action="store_true",
                 help="train: recompute each frame in the backward pass (IFIRNN.remat)")
  p.add_argument("--conv-impl", choices=CONV_IMPLS, default="auto",
                 help="our 3x3 convolution algorithm (IFIRNN.conv_impl, see model/layers.py)")
  p.add_argument("--device", choices=("cpu", "gpu"), default=None,
                 help="JAX device (default: JAX's default backend)")
  p.add_argument("--torch", action=argparse.BooleanOptionalAction, default=None,
                 help="also run the PyTorch reference (default: on for CPU when importable)")
  p.add_argument("--torch-threads", type=int, default=None,
                 help="torch.set_num_threads for the reference (default: os.cpu_count(); "
                 "on a machine shared with other work, 1 avoids OpenMP stalls)")
  p.add_argument("--scan-unroll", help="lax.scan unroll over frames: 'full' or integers, "
                 "comma-separated (train: every value is a variant, default full,1; "
                 "inference: the first is used, default 1)")
  p.add_argument("--processes", type=int, default=1,
                 help="train, CPU: run our step as this many processes, each pinned to one "
                 "core and holding its share of the batch, training together through "
                 "jax.distributed on loopback (as launch/cpu_processes.sh trains); PyTorch "
                 "still runs in one process with --torch-threads threads")
  p.add_argument("--cpu-devices", type=int, default=0,
                 help="train, CPU, one process: our step over this many CPU devices, each "
                 "running its share of the batch on one core (config.cpu_devices); 0: as "
                 "training does, one per core, as many as divide --batch; 1: one device "
                 "with XLA's thread pool")
  p.add_argument("--isolate", action=argparse.BooleanOptionalAction, default=True,
                 help="train: each variant in its own child process (clean peak memory)")
  p.add_argument("--matmul-size", type=int, default=None,
                 help="matmul size for the peak rate (default 2048 on CPU, 4096 on GPU)")
  p.add_argument("--data", help="train: also time the training input pipeline on this "
                 "dataset at the same batch, frames and crop (--height = --width), to compare "
                 "its clips/s with the step's (default: not timed)")
  p.add_argument("--layout", default="gopro", help="--data's layout (gopro, dvd, bsd, generic)")
  p.add_argument("--blur-dir", default="blur_gamma", choices=("blur", "blur_gamma"),
                 help="--data: GOPRO's blur folder")
  p.add_argument("--cache-frames", action="store_true",
                 help="--data: decode every frame once into memory (as configs/demo.py does)")
  p.add_argument("--seed", type=int, default=0, help="seed of the weights and inputs")
  p.add_argument("--out", default="benchmark.json", help="JSON results (written atomically)")
  p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
  return p


def check_out(path: str | os.PathLike, overwrite: bool) -> None:
  """Refuses, before anything runs, an --out that exists (without `overwrite`), is a
  folder, or cannot be written (its folder read-only, or not a folder)."""
  out = Path(path)
  try:
    if out.is_dir():
      raise BenchmarkError(f"{out}: --out is a folder; give a file name, e.g. "
                           f"{out / 'benchmark.json'}")
    outputs.check_parent(out)
    outputs.refuse_existing(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=out.parent):  # a file can be written beside it
      pass
  except DataError as e:
    raise BenchmarkError(str(e)) from None
  except OSError as e:
    raise BenchmarkError(str(outputs.write_error(out, e))) from None


def _cpu_devices(args: argparse.Namespace, platform: str) -> int:
  """--cpu-devices resolved: 1 unless a one-process CPU train step runs in a child."""
  if args.cpu_devices < 0:
    raise BenchmarkError(f"--cpu-devices must be >= 0 (0: one per core), got "
                         f"{args.cpu_devices}")
  one_process_child = (args.mode == "train" and platform == "cpu" and args.isolate
                       and args.processes == 1)
  if args.cpu_devices > 1 and not one_process_child:
    raise BenchmarkError("--cpu-devices > 1 is for --mode train on CPU with --isolate and "
                         "--processes 1")
  if not one_process_child:
    return 1
  batch = args.batch if args.batch is not None else MODE_DEFAULTS["train"]["batch"]
  try:
    return cpu_devices.resolve(args.cpu_devices, batch)
  except ValueError as e:
    raise BenchmarkError(str(e)) from None


def settings_from_args(args: argparse.Namespace) -> BenchmarkSettings:
  defaults = MODE_DEFAULTS[args.mode]
  pick = lambda name: defaults[name] if getattr(args, name) is None else getattr(args, name)  # noqa: E731
  platform = args.device or runtime.default_platform()
  if platform not in ("cpu", "gpu", "cuda", "rocm"):
    raise BenchmarkError(f"JAX's default backend is {platform!r}; pass --device cpu or gpu")
  platform = "gpu" if platform in ("cuda", "rocm") else platform
  use_torch = args.torch
  if use_torch is None:
    use_torch = platform == "cpu" and torch_available()
  elif use_torch and not torch_available():
    raise BenchmarkError("--torch: PyTorch is not installed (pip install torch, or --no-torch)")
  models = tuple(m.strip() for m in pick("models").split(",") if m.strip())
  if not models:
    raise BenchmarkError("--models is empty")
  settings = BenchmarkSettings(
      mode=args.mode, models=models, widths=parse_widths(pick("widths")),
      height=pick("height"), width=pick("width"), batch=pick("batch"), frames=pick("frames"),
      repeats=pick("repeats"), warmup=args.warmup, dtype=args.dtype,
      conv_impl=args.conv_impl, device=platform,
      torch=use_torch, torch_threads=args.torch_threads or os.cpu_count() or 1,
      scan_unroll=_parse_unroll(pick("scan_unroll")), isolate=args.isolate,
      matmul_size=args.matmul_size or (2048 if platform == "cpu" else 4096),
      seed=args.seed, out=args.out, data=args.data, layout=args.layout,
      blur_dir=args.blur_dir, cache_frames=args.cache_frames, processes=args.processes,
      cpu_devices=_cpu_devices(args, platform), remat=args.remat)
  if settings.data and settings.mode != "train":
    raise BenchmarkError("--data is for --mode train (it times the training input pipeline)")
  if settings.data and settings.height != settings.width:
    raise BenchmarkError(f"--data: the pipeline crops squares; pass --height equal to --width "
                         f"(got {settings.height}x{settings.width})")
  if settings.height < 4 or settings.width < 4 or settings.height % 4 or settings.width % 4:
    raise BenchmarkError(f"--height and --width must be positive multiples of 4, got "
                         f"{settings.height}x{settings.width}")
  if settings.repeats < 1 or settings.warmup < 0 or settings.batch < 0 or settings.frames < 0:
    raise BenchmarkError("--repeats must be >= 1, --warmup, --batch and --frames >= 0")
  if args.torch_threads is not None and args.torch_threads < 1:
    raise BenchmarkError(f"--torch-threads must be >= 1, got {args.torch_threads}")
  if settings.matmul_size < 1:
    raise BenchmarkError(f"--matmul-size must be >= 1, got {settings.matmul_size}")
  if settings.processes < 1:
    raise BenchmarkError(f"--processes must be >= 1, got {settings.processes}")
  if settings.processes > 1:
    cores = len(os.sched_getaffinity(0))
    if settings.mode != "train" or platform != "cpu" or not settings.isolate:
      raise BenchmarkError("--processes is for --mode train on CPU with --isolate")
    if settings.processes > cores:
      raise BenchmarkError(f"--processes {settings.processes}: this process may run on "
                           f"{cores} cores only")
    if settings.batch % settings.processes:
      raise BenchmarkError(f"--batch {settings.batch} must be divisible by --processes "
                           f"{settings.processes}")
  for name in models:
    make_model(name, settings)  # unknown names fail before anything is compiled
  if settings.mode == "train":
    if len(models) != 1:
      raise BenchmarkError(f"--mode train takes one model, got --models {','.join(models)}")
    if settings.batch < 1 or settings.frames < 1:
      raise BenchmarkError(f"--mode train needs --batch and --frames >= 1, got "
                           f"{settings.batch} and {settings.frames}")
    if settings.batch % settings.cpu_devices:
      raise BenchmarkError(f"--batch {settings.batch} must be divisible by --cpu-devices "
                           f"{settings.cpu_devices}")
  return settings


def run(settings: BenchmarkSettings) -> dict[str, Any]:
  """Runs the benchmark of `settings`, writing the report to settings.out as it goes."""
  device = select_device(settings.device)
  out = Path(settings.out)
  report: dict[str, Any] = {"mode": settings.mode, "environment": environment(device),
                            "settings": dataclasses.asdict(settings)}
  report["settings"]["scan_unroll"] = [unroll_label(u) for u in settings.scan_unroll]
  save = lambda: files.write_json_atomic(out, report)  # noqa: E731
  if settings.mode == "inference":
    run_inference(settings, device, report, save)
  else:
    run_train(settings, device, report, save)
  return report


def benchmark(args: argparse.Namespace) -> None:
  """Runs the --mode of the command line, prints its table and where the results are."""
  check_out(args.out, args.overwrite)
  if args.mode in ("memory", "commands"):
    report = run_memory(args) if args.mode == "memory" else run_commands(args)
    print(memory_table(report) if args.mode == "memory" else commands_table(report))
    print(f"results: {args.out}")
    return
  if args.mode == "train" and args.isolate:
    # Several processes share the device: keep this one from preallocating GPU memory
    # (effective only before JAX first touches a device).
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
  settings = settings_from_args(args)
  report = run(settings)
  print(inference_table(report) if settings.mode == "inference" else train_table(report))
  print(f"results: {settings.out}")


def main(argv: Sequence[str] | None = None) -> int:
  """The command line; returns the exit status (0, 2 bad input, 130 Ctrl-C, 143 SIGTERM)."""
  args = build_parser().parse_args(argv)
  return termination.run_command(lambda: benchmark(args), (BenchmarkError,),
                                 "the benchmark did not finish")
