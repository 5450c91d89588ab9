"""Evaluation with the paper's protocol: `python -m ifirnn_jax.evaluate`.

    python -m ifirnn_jax.evaluate --weights C2H3.safetensors --data GOPRO_Large
    python -m ifirnn_jax.evaluate --weights C2H3-reg.safetensors --data GOPRO_Large --adaptive
    python -m ifirnn_jax.evaluate --workdir runs/c1h4 --data GOPRO_Large --sweep

Every test sequence runs through the recurrence frame by frame (constant memory); the
scored frames skip the first `skip_first` (4) and the last `skip_last` (1) frames of
each sequence. Metrics are those of `metrics.py` (8-bit quantised RGB PSNR, Gaussian
SSIM), averaged over all scored frames (and per sequence). Results: a table on the
console; results.json, results.csv (per sequence + overall) and frames.csv (per frame),
written atomically into --out.

Inference settings:
  * fixed N (default: the model's N, or --iterations): the paper's protocol; a gated
    ("-reg") model's gate is removed, as in the paper.
  * --adaptive: a gated model keeps its gate, deterministically: before each iteration
    after the first it continues while p(continue) > 0.5, at most N iterations. The
    mean number of iterations per frame is reported (a fixed N reports N).
  * --sweep [--max-iterations K]: every N = 1..K (default K = max(2 * model N, 4)), and
    the adaptive setting too for a gated model, in one pass over the data. Also writes
    the paper's Fig. 4 (frames best restored by each N) and Fig. 5 (PSNR against
    milliseconds per frame) as PNGs, with their data (JSON, CSV).

Time per frame is the wall time of the streaming step (`IFIRNN.step`, output copied to
the host), excluding the first frame of every sequence (which includes compilation);
it is measured at the dataset's frame size on the current JAX device. The adaptive
setting runs the iterations as a `lax.while_loop` that stops once the gate says stop,
so its time per frame falls with the mean number of iterations.

Exit status: 0 done, 2 bad input (one line `error: ...` on stderr), 130 Ctrl-C, 143
SIGTERM.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Sequence

import numpy as np

from data_pipeline import image_io, layouts, outputs, termination
from data_pipeline.errors import DataError
from ifirnn_jax import (checkpoint, cli, cpu_policy, default_config, metrics, plots, reports,
                        weights)
from ifirnn_jax.checkpoint import CheckpointError
from ifirnn_jax.evaluation import EvalError, FrameResult, Setting, frame_results, summarize
from ifirnn_jax.models import IFIRNN, MAX_ITERATIONS, Params
from ifirnn_jax.weights import WeightsError


# ------------------------------------------------------------------ command line
def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog="python -m ifirnn_jax.evaluate", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  source = parser.add_mutually_exclusive_group(required=True)
  source.add_argument("--workdir", help="a training run's workdir (latest checkpoint)")
  source.add_argument("--weights", help="a .safetensors weight file (ifr.save_weights)")
  parser.add_argument("--step", type=int, help="with --workdir: this checkpoint step")
  parser.add_argument("--best", action="store_true", help="with --workdir: the best-PSNR one")
  parser.add_argument("--model", help="with --weights: the model name to check it against, "
                      "e.g. C2H3 (default: inferred from the file)")
  parser.add_argument("--data", required=True, help="dataset root")
  parser.add_argument("--layout", default="gopro", choices=layouts.LAYOUTS)
  parser.add_argument("--split", default="test")
  parser.add_argument("--blur-dir", default="blur_gamma", help="GOPRO: blur or blur_gamma")
  parser.add_argument("--iterations", type=int, help="N at inference (default: the model's); "
                      "with --adaptive, the most iterations the gate may run")
  parser.add_argument("--adaptive", action="store_true",
                      help="gated ('-reg') models: keep the gate (deterministic: continue "
                      "while p(continue) > 0.5) and report the mean iterations per frame")
  parser.add_argument("--sweep", action="store_true",
                      help="evaluate every N = 1..K (and adaptive, for a gated model) and "
                      "write Fig. 4 and Fig. 5 with their data into --out")
  parser.add_argument("--max-iterations", type=int, default=None,
                      help="K of --sweep (default: max(2 * the model's N, 4))")
  cli.add_conv_impl_flag(parser)
  parser.add_argument("--skip-first", type=int, default=4)
  parser.add_argument("--skip-last", type=int, default=1)
  parser.add_argument("--out", default=None, help="results folder (default: "
                      "<workdir>/evaluations/<data folder name>_<split>, or with --weights "
                      "./evaluations/<weight file name>_<data folder name>_<split>)")
  parser.add_argument("--save-frames", default=None, help="write output frames here "
                      "(with --sweep: one subfolder per setting)")
  return parser.parse_args(argv)


def _check_args(args: argparse.Namespace) -> None:
  if args.iterations is not None and not 1 <= args.iterations <= MAX_ITERATIONS:
    raise EvalError(f"--iterations must be in 1..{MAX_ITERATIONS}, got {args.iterations}")
  if args.max_iterations is not None:
    if not args.sweep:
      raise EvalError("--max-iterations needs --sweep")
    if not 1 <= args.max_iterations <= MAX_ITERATIONS:
      raise EvalError(f"--max-iterations must be in 1..{MAX_ITERATIONS}, "
                      f"got {args.max_iterations}")
  if args.skip_first < 0 or args.skip_last < 0:
    raise EvalError(f"--skip-first and --skip-last must be >= 0, got {args.skip_first}, "
                    f"{args.skip_last}")
  if args.weights is None and args.model:
    raise EvalError("--model needs --weights")
  if args.workdir is None and (args.step is not None or args.best):
    raise EvalError("--step and --best need --workdir")


def _check_writable(folder: Path, what: str) -> None:
  """Creates `folder` if needed and proves a file can be written in it."""
  if folder.exists() and not folder.is_dir():
    raise EvalError(f"{what} {folder}: exists and is not a folder")
  try:
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=folder):
      pass
  except OSError as e:
    raise EvalError(f"{what} {folder}: cannot be written ({e.strerror or e})") from None


def _save_frames(results: Iterator[FrameResult], settings: Sequence[Setting],
                 save_dir: str | None) -> Iterator[FrameResult]:
  """Passes `results` on, writing each output frame into `save_dir` as
  <seq>/<frame>.png, or <setting slug>/<seq>/<frame>.png for several settings."""
  for result in results:
    if save_dir is not None:
      folder = Path(save_dir) / (settings[result.setting].slug if len(settings) > 1 else "")
      path = (folder / result.sequence / result.frame).with_suffix(".png")
      path.parent.mkdir(parents=True, exist_ok=True)
      image_io.write_image(path, metrics.to_uint8_host(result.output))
    yield result


def _load(args: argparse.Namespace) -> tuple[IFIRNN, Params]:
  if args.workdir:
    model, params = checkpoint.load_checkpoint(args.workdir, args.step, best=args.best)
  else:
    model, params = weights.load_model(args.weights)
    if args.model:
      expected = dataclasses.replace(model, **default_config.model_fields(args.model))
      params = weights.load_weights(args.weights, expected)
      model = expected
  return dataclasses.replace(model, conv_impl=args.conv_impl), params


def _settings(args: argparse.Namespace, model: IFIRNN) -> tuple[list[Setting], int]:
  """(settings to evaluate, index of the one results.json reports)."""
  n = model.iterations if args.iterations is None else args.iterations
  if args.adaptive and not model.gated:
    raise EvalError(f"--adaptive needs a gated ('-reg') model, but {model.name} "
                    f"({args.weights or args.workdir}) has no gate")
  primary = Setting(n, args.adaptive)
  if not args.sweep:
    return [primary], 0
  k = args.max_iterations or min(max(2 * model.iterations, 4), MAX_ITERATIONS)
  if n > k:
    raise EvalError(f"--iterations {n} is above the sweep's --max-iterations {k}")
  settings = [Setting(i) for i in range(1, k + 1)]
  if model.gated:
    settings.append(Setting(n, adaptive=True))
  return settings, settings.index(primary)


def default_out(args: argparse.Namespace) -> Path:
  """<workdir>/evaluations/<data>_<split>, or evaluations/<weights>_<data>_<split> in the
  current folder (<data>: the data folder's name, <weights>: the weight file's stem).

  Apart from training's own evaluation (<workdir>/eval), one folder per dataset.
  """
  data = Path(os.path.realpath(args.data)).name or "data"
  if args.workdir:
    return Path(args.workdir) / "evaluations" / f"{data}_{args.split}"
  return Path("evaluations") / f"{Path(args.weights).stem}_{data}_{args.split}"


def run(args: argparse.Namespace) -> None:
  """Evaluates as `args` say; raises EvalError, DataError, WeightsError, ... on bad input."""
  _check_args(args)
  model, params = _load(args)
  settings, primary = _settings(args, model)
  sequences = layouts.find_sequences(
      args.data, args.layout, args.split,
      **({"blur_dir": args.blur_dir} if args.layout == "gopro" else {}))
  out = Path(args.out) if args.out else default_out(args)
  _check_writable(out, "output folder")
  if args.save_frames:
    outputs.check_not_input(args.save_frames, [args.data], flag="--save-frames folder")
    _check_writable(Path(args.save_frames), "--save-frames folder")
  print(f"{model.name}: {len(sequences)} sequences, settings "
        f"{', '.join(s.label for s in settings)}", file=sys.stderr)
  results = frame_results(model, params, sequences, settings, skip_first=args.skip_first,
                          skip_last=args.skip_last)
  results = reports.with_progress(_save_frames(results, settings, args.save_frames),
                                  sum(s.num_frames for s in sequences), len(settings))
  summaries = summarize(results, settings, skip_first=args.skip_first,
                        skip_last=args.skip_last)
  summary = summaries[primary]
  for line in reports.unscored_warnings(summary, args.skip_first, args.skip_last):
    print(line, file=sys.stderr)
  print(reports.format_table(summary, model.name))
  print(f"{summary.frames_per_second:.2f} frames/s (streaming, compile excluded)")
  reports.write_results(summary, out, model.name)
  print(f"results: {out / 'results.json'}, {out / 'results.csv'}, {out / 'frames.csv'}")
  if args.sweep:
    sizes = [image_io.read_image_size(s.blur_paths[0]) for s in sequences]
    print(reports.format_sweep_table(summaries, model.name))
    paths = plots.write_sweep(summaries, out, model.name, frame_sizes=sizes)
    print("sweep: " + ", ".join(str(p) for p in paths))


def main(argv: Sequence[str] | None = None) -> int:
  """The command line; returns the exit status (0, or 2 for bad input)."""
  try:
    args = _parse(argv)
  except SystemExit as e:  # --help, or a usage error (already printed, status 2)
    return int(e.code or 0)
  return termination.run_command(
      lambda: run(args),
      (EvalError, DataError, WeightsError, CheckpointError, ValueError, OSError),
      "no results written")


if __name__ == "__main__":
  cpu_policy.start_command()  # may re-execute this process once (cpu_policy.py)
  sys.exit(main())
