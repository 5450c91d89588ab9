"""Evaluation with the paper's protocol: `python -m ifirnn_jax.evaluate`.

    python -m ifirnn_jax.evaluate --weights C2H3.safetensors --data GOPRO_Large
    python -m ifirnn_jax.evaluate --weights C2H3-reg.safetensors --data GOPRO_Large --adaptive
    python -m ifirnn_jax.evaluate --workdir runs/c1h4 --data GOPRO_Large --sweep

Every test sequence runs through the recurrence frame by frame (constant memory); the
scored frames skip the first `skip_first` (4) and the last `skip_last` (1) frames of
each sequence. Metrics are those of `evaluation/metrics.py` (8-bit quantised RGB PSNR, Gaussian
SSIM), averaged over all scored frames (and per sequence). Results: a table on the
console (per sequence and overall); results.json (with the weights or workdir and step
scored), results.csv (per sequence + overall) and frames.csv (per frame) in --out.

Outputs are written as a set: --out (and --save-frames) is built in a hidden temporary
folder beside it and renamed into place once complete, so it holds either the old
results or the new ones, never a mix; an interrupted or failed run leaves nothing. An
existing --out or --save-frames folder is replaced only with --overwrite, and only if it
holds nothing but what this command writes.

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
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Sequence

from data_pipeline import image_io, layouts
from data_pipeline.commandline import console, termination
from data_pipeline.safe_io import files, outputs
from data_pipeline.errors import DataError
from ifirnn_jax import cli, runtime
from ifirnn_jax.training import default_config
from ifirnn_jax.storage import loading, weights
from ifirnn_jax.evaluation import metrics, plots, reports
from ifirnn_jax.storage.checkpoint import CheckpointError
from ifirnn_jax.evaluation.protocol import EvalError, FrameResult, Setting, frame_results, summarize
from ifirnn_jax.model.network import IFIRNN, MAX_ITERATIONS, Params, check_count
from ifirnn_jax.storage.weights import WeightsError


# ------------------------------------------------------------------ command line
def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="python -m ifirnn_jax.evaluate", description=__doc__,
                                   formatter_class=console.HelpFormatter)
  source = parser.add_mutually_exclusive_group(required=True)
  source.add_argument("--workdir", help="a training run's workdir (latest checkpoint)")
  source.add_argument("--weights", help="a .safetensors weight file (ifr.save_weights)")
  parser.add_argument("--step", type=int,
                      help="with --workdir: this checkpoint step (default: the latest)")
  parser.add_argument("--best", action="store_true", help="with --workdir: the best-PSNR one")
  parser.add_argument("--model", help="with --weights: the model name to check it against, "
                      "e.g. C2H3 (default: inferred from the file)")
  parser.add_argument("--data", required=True, help="dataset root")
  parser.add_argument("--layout", default="gopro", choices=layouts.LAYOUTS,
                      help="the dataset's folder layout (README, Datasets)")
  parser.add_argument("--split", default="test", help="the split to score: train or test "
                      "(gopro, dvd), train, valid or test (bsd), <data>/<split> (generic)")
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
  parser.add_argument("--skip-first", type=int, default=4, help="frames not scored at the "
                      "start of each sequence, while the hidden state warms up (as the paper)")
  parser.add_argument("--skip-last", type=int, default=1,
                      help="frames not scored at the end of each sequence (as the paper)")
  parser.add_argument("--out", default=None, help="results folder (default: "
                      "<workdir>/evaluations/<data folder name>_<split>_step<step>, or with "
                      "--weights ./evaluations/<weight file name>_<data folder name>_<split>)")
  parser.add_argument("--save-frames", default=None, help="write output frames here "
                      "(with --sweep: one subfolder per setting; default: not written)")
  parser.add_argument("--overwrite", action="store_true",
                      help="replace an existing --out (and --save-frames) folder this "
                      "command wrote")
  return parser


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
  return build_parser().parse_args(argv)


def _check_args(args: argparse.Namespace) -> None:
  if args.max_iterations is not None and not args.sweep:
    raise EvalError("--max-iterations needs --sweep")
  for flag, value in (("--iterations", args.iterations), ("--max-iterations", args.max_iterations)):
    try:
      value is None or check_count(flag, value)  # the model's own bounds on N
    except ValueError as e:
      raise EvalError(str(e)) from None
  if args.skip_first < 0 or args.skip_last < 0:
    raise EvalError(f"--skip-first and --skip-last must be >= 0, got {args.skip_first}, "
                    f"{args.skip_last}")
  if args.weights is None and args.model:
    raise EvalError("--model needs --weights")
  if args.workdir is None and (args.step is not None or args.best):
    raise EvalError("--step and --best need --workdir")


# What --out may hold for --overwrite to replace it: the files evaluate writes.
_OUT_FILES = (*reports.RESULT_FILES, "sweep.json", "sweep_frames.csv",
              "fig4_best_iterations.png", "fig4_best_iterations.csv", "fig5_psnr_time.png",
              "fig5_psnr_time.csv")


def _foreign_results(folder: Path) -> list[str]:
  return sorted(p.name for p in folder.iterdir() if p.name not in _OUT_FILES or not p.is_file())


def _foreign_frames(folder: Path, depth: int) -> list[str]:
  """Entries of a --save-frames folder that are not <depth levels of folders>/*.png."""
  foreign = []
  for entry in folder.iterdir():
    if entry.is_symlink():
      foreign.append(entry.name)
    elif depth and entry.is_dir():
      foreign += [f"{entry.name}/{name}" for name in _foreign_frames(entry, depth - 1)]
    elif depth or not entry.is_file() or entry.suffix != ".png":
      foreign.append(entry.name + ("/" if entry.is_dir() else ""))
  return sorted(foreign)


def _check_output(folder: Path, what: str, overwrite: bool, foreign: list[str] | None) -> bool:
  """Refuses an output folder that cannot be (re)placed; True if it exists, not empty."""
  outputs.check_parent(folder)
  if not outputs.exists(folder):
    return False
  if not folder.is_dir():
    raise EvalError(f"{what} {folder}: exists and is not a folder")
  if not any(folder.iterdir()):
    return False
  outputs.refuse_existing(folder, overwrite)
  if foreign:
    more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
    raise EvalError(f"{what} {folder}: will not replace this folder: it holds more than "
                    f"this command writes ({', '.join(foreign[:3])}{more} would be lost)")
  return True


def _partial_folder(folder: Path, what: str) -> Path:
  """The hidden folder beside `folder` to build it in (leftovers of killed runs removed)."""
  try:
    folder.parent.mkdir(parents=True, exist_ok=True)
    outputs.remove_stale_partials(folder, is_folder=True)
    return files.make_partial_folder(folder)
  except OSError as e:
    raise EvalError(f"{what} {folder}: cannot be written ({e.strerror or e})") from None


def _move_into_place(partial: Path, folder: Path, replace: bool) -> None:
  """Renames the complete `partial` to `folder`: replacing it if `replace`, else only if
  no other run made it meanwhile."""
  try:
    if replace or (folder.is_dir() and not any(folder.iterdir())):
      files.replace_folder(partial, folder)
    else:
      files.rename_new(partial, folder)
  except FileExistsError:
    raise DataError(f"{folder}: appeared while this run was evaluating (another run's "
                    f"output?); kept it and wrote nothing; pass --overwrite to replace "
                    f"it") from None
  except OSError as e:
    raise outputs.write_error(folder, e, "move the results into place as") from None


def _save_frames(results: Iterator[FrameResult], settings: Sequence[Setting],
                 save_dir: Path | None, shown_dir: Path | None) -> Iterator[FrameResult]:
  """Passes `results` on, writing each output frame into `save_dir` as
  <seq>/<frame>.png, or <setting slug>/<seq>/<frame>.png for several settings; errors
  name the frame in `shown_dir`."""
  for result in results:
    if save_dir is not None:
      name = Path(settings[result.setting].slug if len(settings) > 1 else "",
                  result.sequence, result.frame).with_suffix(".png")
      path = save_dir / name
      try:
        path.parent.mkdir(parents=True, exist_ok=True)
        image_io.write_image(path, metrics.to_uint8_host(result.output))
      except (OSError, DataError) as e:  # image_io raises DataError from the OSError
        cause = e if isinstance(e, OSError) else e.__cause__
        if not isinstance(cause, OSError):
          raise
        raise outputs.write_error(shown_dir / name, cause) from None
    yield result


def _load(args: argparse.Namespace) -> tuple[IFIRNN, Params, int | None]:
  """(model, params, the checkpoint step read; None for --weights)."""
  model, params, step = loading.load_network(args.weights, args.workdir, step=args.step,
                                             best=args.best)
  if args.weights and args.model:  # the file must fit the named model
    try:
      expected = dataclasses.replace(model, **default_config.model_fields(args.model))
    except ValueError as e:  # an unknown name (ConfigError), or N out of bounds
      reason = str(e).removeprefix("config.model.name: ")
      raise EvalError(f"--model {args.model}: {reason}") from None
    params = weights.load_weights(args.weights, expected)
    model = expected
  return dataclasses.replace(model, conv_impl=args.conv_impl), params, step


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


def default_out(args: argparse.Namespace, step: int | None = None) -> Path:
  """<workdir>/evaluations/<data>_<split>_step<step>, or
  evaluations/<weights>_<data>_<split> in the current folder (<data>: the data folder's
  name, <weights>: the weight file's stem).

  Apart from training's own evaluation (<workdir>/eval), one folder per dataset and
  checkpoint step.
  """
  data = Path(os.path.realpath(args.data)).name or "data"
  if args.workdir:
    suffix = "" if step is None else f"_step{step}"
    return Path(args.workdir) / "evaluations" / f"{data}_{args.split}{suffix}"
  return Path("evaluations") / f"{Path(args.weights).stem}_{data}_{args.split}"


def _scored(args: argparse.Namespace, step: int | None) -> dict[str, object]:
  """What results.json records of the parameters scored and the data."""
  source = (dict(weights=os.path.abspath(args.weights)) if args.weights else
            dict(workdir=os.path.abspath(args.workdir), step=step, best=args.best))
  return dict(source, data=os.path.abspath(args.data), split=args.split)


def run(args: argparse.Namespace) -> None:
  """Evaluates as `args` say; raises EvalError, DataError, WeightsError, ... on bad input."""
  _check_args(args)
  model, params, step = _load(args)
  settings, primary = _settings(args, model)
  sequences = layouts.find_sequences(
      args.data, args.layout, args.split,
      **({"blur_dir": args.blur_dir} if args.layout == "gopro" else {}))
  out = Path(args.out) if args.out else default_out(args, step)
  outputs.check_not_input(out, [args.data], flag="output folder")
  if args.save_frames:  # each is replaced whole: neither may hold the other
    real_frames, real_out = Path(os.path.realpath(args.save_frames)), Path(os.path.realpath(out))
    if real_frames == real_out or {real_frames, real_out} & {*real_frames.parents,
                                                            *real_out.parents}:
      raise EvalError(f"--save-frames folder {args.save_frames} and output folder {out}: one "
                      f"is or holds the other; give them separate folders")
  replace_out = _check_output(out, "output folder", args.overwrite,
                              _foreign_results(out) if out.is_dir() else None)
  frames_dir = Path(args.save_frames) if args.save_frames else None
  replace_frames = False
  if frames_dir is not None:
    outputs.check_not_input(frames_dir, [args.data], flag="--save-frames folder")
    depth = 2 if len(settings) > 1 else 1
    replace_frames = _check_output(frames_dir, "--save-frames folder", args.overwrite,
                                   _foreign_frames(frames_dir, depth)
                                   if frames_dir.is_dir() else None)
  print(f"{model.name}: {console.plural(len(sequences), 'sequence')}, "
        f"settings {', '.join(s.label for s in settings)}", file=sys.stderr)
  partials: list[Path] = []
  try:
    partials.append(_partial_folder(out, "output folder"))
    if frames_dir is not None:
      partials.append(_partial_folder(frames_dir, "--save-frames folder"))
    results = frame_results(model, params, sequences, settings, skip_first=args.skip_first,
                            skip_last=args.skip_last)
    results = reports.with_progress(
        _save_frames(results, settings, partials[-1] if frames_dir else None, frames_dir),
        sum(s.num_frames for s in sequences), len(settings))
    summaries = summarize(results, settings, skip_first=args.skip_first,
                          skip_last=args.skip_last)
    summary = summaries[primary]
    for line in reports.unscored_warnings(summary, args.skip_first, args.skip_last):
      print(line, file=sys.stderr)
    reports.write_results(summary, partials[0], model.name, _scored(args, step),
                          shown_dir=out)
    if args.sweep:
      sizes = [image_io.read_image_size(s.blur_paths[0]) for s in sequences]
      try:
        sweep_paths = plots.write_sweep(summaries, partials[0], model.name, frame_sizes=sizes)
      except OSError as e:
        raise outputs.write_error(out, e, "write the sweep's figures into") from None
    if frames_dir is not None:
      _move_into_place(partials.pop(), frames_dir, replace_frames)
    _move_into_place(partials.pop(), out, replace_out)
  finally:
    for partial in partials:
      shutil.rmtree(partial, ignore_errors=True)
  print(reports.format_sequence_table(summary))
  print(reports.format_table(summary, model.name))
  print(f"{summary.frames_per_second:.2f} frames/s (streaming, compile excluded)")
  print(f"results: {out / 'results.json'}, {out / 'results.csv'}, {out / 'frames.csv'}")
  if frames_dir is not None:
    print(f"frames: {frames_dir}")
  if args.sweep:
    print(reports.format_sweep_table(summaries, model.name))
    print("sweep: " + ", ".join(str(out / Path(p).name) for p in sweep_paths))


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
  runtime.setup()
  sys.exit(main())
