"""Measures the throughput of the training input pipeline (clips per second).

    python -m data_pipeline.pipeline_benchmark --root GOPRO_Large \
        --layout gopro --blur-dir blur_gamma --batch-size 4 --steps 50

Builds the pipeline of `input_pipeline.make_train_iterator` with the given
settings, pulls `--warmup` batches (tracing, thread start-up, file cache),
then times `--steps` batches and prints clips/s and frames/s (blur+sharp
pairs). Compare with the training step time to see whether the accelerator
would wait for data.
"""

from __future__ import annotations

import argparse
import sys
import time

from data_pipeline import input_pipeline, layouts
from data_pipeline.commandline import termination
from data_pipeline.commandline.console import HelpFormatter, plural
from data_pipeline.errors import DataError


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="python -m data_pipeline.pipeline_benchmark", formatter_class=HelpFormatter,
      description=__doc__.split("\n\n")[0])
  parser.add_argument("--root", required=True, help="dataset folder")
  parser.add_argument("--layout", required=True, choices=layouts.LAYOUTS,
                      help="the dataset's folder layout")
  parser.add_argument("--split", default="train",
                      help="split (train, test, valid; 'none' for no split)")
  parser.add_argument("--blur-dir", default="blur",
                      choices=layouts.GOPRO_BLUR_DIRS, help="gopro only")
  parser.add_argument("--batch-size", type=int, default=4, help="clips per batch")
  parser.add_argument("--clip-length", type=int, default=12, help="frames per clip")
  parser.add_argument("--crop-size", type=int, default=256,
                      help="side of the square crop, pixels")
  parser.add_argument("--steps", type=int, default=20,
                      help="batches timed after the warm-up")
  parser.add_argument("--warmup", type=int, default=3,
                      help="batches pulled before timing")
  parser.add_argument("--cache-frames", action="store_true",
                      help="decode every frame once into memory")
  parser.add_argument("--noise-std-sigma", type=float, default=2.0,
                      help="std of the per-clip noise sigma, 8-bit units")
  parser.add_argument("--seed", type=int, default=0, help="seed of the clips drawn and their noise")
  return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
  return build_parser().parse_args(argv)


def measure(batches, steps: int, warmup: int) -> float:
  """Seconds per batch of `batches`, after pulling `warmup` batches."""
  for _ in range(warmup):
    next(batches)
  start = time.perf_counter()
  for _ in range(steps):
    next(batches)
  return (time.perf_counter() - start) / steps


def report(args: argparse.Namespace) -> None:
  """Measures the training input pipeline of the command line and prints its speed."""
  if args.steps < 1 or args.warmup < 0:
    raise termination.UsageError("--steps must be >= 1 and --warmup >= 0")
  split = None if args.split.lower() == "none" else args.split
  sequences = layouts.find_sequences(
      args.root, args.layout, split, blur_dir=args.blur_dir,
      clip_length=args.clip_length)
  batches = input_pipeline.make_train_iterator(
      sequences, batch_size=args.batch_size, seed=args.seed,
      clip_length=args.clip_length, crop_size=args.crop_size,
      noise_std_sigma=args.noise_std_sigma, cache_frames=args.cache_frames)
  seconds = measure(batches, args.steps, args.warmup)
  clips = args.batch_size / seconds
  print(f"{plural(len(sequences), 'sequence')}, "
        f"{sum(s.num_frames for s in sequences)} frames; batch "
        f"{args.batch_size} x {args.clip_length} frames of "
        f"{args.crop_size}x{args.crop_size}, cache_frames="
        f"{args.cache_frames}")
  print(f"{seconds * 1e3:.1f} ms/batch, {clips:.1f} clips/s, "
        f"{clips * args.clip_length:.0f} frames/s")


def main(argv: list[str] | None = None) -> int:
  """The command line; returns the exit status (0, 2 bad input, 130 Ctrl-C, 143 SIGTERM)."""
  args = parse_args(argv)
  return termination.run_command(lambda: report(args), (DataError,), "nothing measured")


if __name__ == "__main__":
  sys.exit(main())
