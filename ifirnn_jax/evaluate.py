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
import csv
import dataclasses
import functools
import io
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Sequence

import jax
import numpy as np

from data_pipeline import eval_pipeline, image_io, layouts, outputs
from ifirnn_jax import cli, metrics
from ifirnn_jax.models import IFIRNN, MAX_ITERATIONS, Params, pad_to_multiple_of_4


class EvalError(ValueError):
  """Evaluation that cannot run: bad options, unwritable output, nothing to score."""


@dataclasses.dataclass(frozen=True)
class Setting:
  """One inference setting: N iterations, fixed or adaptive (gate kept, greedy)."""

  iterations: int
  adaptive: bool = False

  @property
  def label(self) -> str:
    """'N=3', or 'adaptive N<=3'."""
    return f"adaptive N<={self.iterations}" if self.adaptive else f"N={self.iterations}"

  @property
  def slug(self) -> str:
    """A file-name-safe label: 'N3', 'adaptive'."""
    return "adaptive" if self.adaptive else f"N{self.iterations}"


@dataclasses.dataclass
class EvalSummary:
  """Frame-averaged results over all scored frames, plus per-sequence rows.

  iterations: N (the maximum N for an adaptive setting); mean_iterations: iterations
  run per scored frame, averaged (N for a fixed setting). frame_rows: one dict per
  scored frame (sequence, frame, psnr, ssim, blurry_psnr, blurry_ssim, iterations),
  in evaluation order; not part of `as_dict`.
  """

  psnr: float
  ssim: float
  blurry_psnr: float
  blurry_ssim: float
  frames: int
  frames_per_second: float
  iterations: int
  sequences: list[dict[str, Any]]
  example: dict[str, np.ndarray] | None = None  # uint8 [H, W, 3] blurry / output / sharp
  mean_iterations: float | None = None
  adaptive: bool = False
  frame_rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)

  def __post_init__(self):
    if self.mean_iterations is None:
      self.mean_iterations = float(self.iterations)

  @property
  def ms_per_frame(self) -> float:
    return 1000.0 / self.frames_per_second if self.frames_per_second > 0 else float("nan")

  @property
  def setting(self) -> Setting:
    return Setting(self.iterations, self.adaptive)

  def as_dict(self) -> dict[str, Any]:
    d = dataclasses.asdict(self)
    d.pop("example")
    d.pop("frame_rows")
    d["ms_per_frame"] = self.ms_per_frame
    return d


# ------------------------------------------------------------------ evaluation
@functools.partial(jax.jit, static_argnums=(0, 4))
def _adaptive_step(model: IFIRNN, params: Params, frame: jax.Array, state: jax.Array,
                   iterations: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """`model.step(..., adaptive=True)` on one [H, W, 3] frame, plus the iterations run.

  Returns (L_t [H, W, 3], h_t, number of iterations the gate ran: float32 scalar).
  """
  h, w = frame.shape[:2]
  out, hidden, trace = model.apply_sequence(
      params, pad_to_multiple_of_4(frame[None, None]), hidden=state[None],
      iterations=iterations, gate_mode="greedy")
  return out[0, 0, :h, :w], hidden[0], trace.iterations[0, 0]


def _run_step(model: IFIRNN, params: Params, frame: np.ndarray, state: jax.Array,
              setting: Setting) -> tuple[jax.Array, jax.Array, Any]:
  if setting.adaptive:
    return _adaptive_step(model, params, frame, state, setting.iterations)
  output, state = model.step(params, frame, state, iterations=setting.iterations)
  return output, state, setting.iterations


class _Tally:
  """Running scores and timing of one setting."""

  def __init__(self, setting: Setting):
    self.setting = setting
    self.rows: list[dict[str, Any]] = []        # per sequence
    self.frame_rows: list[dict[str, Any]] = []  # per scored frame
    self.timed_frames, self.timed_seconds = 0, 0.0
    self.example = None

  def summary(self) -> EvalSummary:
    f = self.frame_rows
    return EvalSummary(
        psnr=_mean(r["psnr"] for r in f), ssim=_mean(r["ssim"] for r in f),
        blurry_psnr=_mean(r["blurry_psnr"] for r in f),
        blurry_ssim=_mean(r["blurry_ssim"] for r in f),
        frames=len(f), iterations=self.setting.iterations, sequences=self.rows,
        example=self.example, mean_iterations=_mean(r["iterations"] for r in f),
        adaptive=self.setting.adaptive, frame_rows=f,
        frames_per_second=(self.timed_frames / self.timed_seconds if self.timed_seconds
                           else float("nan")))


def _mean(values: Iterable[float]) -> float:
  return float(np.mean(np.asarray(list(values), np.float64)))


def evaluate_settings(model: IFIRNN, params: Params, sequences: Sequence[Any],
                      settings: Sequence[Setting], *, skip_first: int = 4,
                      skip_last: int = 1, max_sequences: int = -1, max_frames: int = -1,
                      save_dir: str | os.PathLike | None = None,
                      keep_example: bool = False, progress: bool = False) -> list[EvalSummary]:
  """Evaluates several inference settings in one pass over the data.

  Each frame is read once and stepped through every setting, each with its own hidden
  state; frames [skip_first, T - skip_last) of each sequence are scored.

  Args:
    model, params: the network.
    sequences: paired `layouts.Sequence`s.
    settings: the inference settings; adaptive ones need a gated model.
    max_sequences / max_frames: -1 for all (shorter validation during training).
    save_dir: writes <save_dir>/<seq>/<frame name>.png for a single setting, and
      <save_dir>/<setting slug>/<seq>/<frame name>.png for several.
    keep_example: keep one middle frame (blurry, output, sharp) per setting.
    progress: per-sequence progress with ETA on stderr.

  Returns:
    One EvalSummary per setting, in the order of `settings`.
  """
  if not settings:
    raise EvalError("no inference setting to evaluate")
  for setting in settings:
    if setting.iterations < 1:
      raise EvalError(f"iterations must be >= 1, got {setting.iterations}")
    if setting.adaptive and not model.gated:
      raise EvalError(f"adaptive inference needs a gated ('-reg') model; "
                      f"{model.name} has no gate")
  if skip_first < 0 or skip_last < 0:
    raise EvalError(f"skip_first and skip_last must be >= 0, got {skip_first}, {skip_last}")
  sequences = list(sequences)
  if max_sequences > 0:
    sequences = sequences[:max_sequences]
  tallies = [_Tally(s) for s in settings]
  save_dirs = [None if save_dir is None else
               Path(save_dir) if len(settings) == 1 else Path(save_dir) / s.slug
               for s in settings]
  lengths = [s.num_frames if max_frames <= 0 else min(s.num_frames, max_frames)
             for s in sequences]
  start, done = time.perf_counter(), 0
  for index, (sequence, length) in enumerate(zip(sequences, lengths)):
    scored = range(skip_first, max(skip_first, length - skip_last))
    states = [None] * len(settings)
    seq_start = [len(t.frame_rows) for t in tallies]
    for t, (name, blur, sharp) in enumerate(eval_pipeline.iter_eval_frames(sequence)):
      if t >= length:
        break
      score = t in scored and sharp is not None
      if score:
        bp, bs = (float(v) for v in metrics.psnr_ssim(blur, sharp))
      for k, (tally, setting) in enumerate(zip(tallies, settings)):
        if states[k] is None:
          states[k] = model.initial_state(*blur.shape[:2])
        tick = time.perf_counter()
        output, states[k], iterations = _run_step(model, params, blur, states[k], setting)
        output = np.asarray(output)  # waits for the device
        if not np.isfinite(output).all():
          raise EvalError(f"{sequence.name}/{name}: the model's output is not finite (its "
                          f"hidden state diverged after {t + 1} frames; a model trained on "
                          f"short clips can be unstable on long sequences)")
        if t > 0:  # the first frame of a sequence includes compilation
          tally.timed_frames += 1
          tally.timed_seconds += time.perf_counter() - tick
        if save_dirs[k] is not None:
          _save_frame(save_dirs[k] / sequence.name / name, output)
        if not score:
          continue
        p, s = (float(v) for v in metrics.psnr_ssim(output, sharp))
        tally.frame_rows.append(dict(sequence=sequence.name, frame=name, psnr=p, ssim=s,
                                     blurry_psnr=bp, blurry_ssim=bs,
                                     iterations=float(iterations)))
        if keep_example and tally.example is None and t == scored.start + len(scored) // 2:
          tally.example = {key: np.asarray(metrics.quantize(v), np.uint8)
                           for key, v in (("blurry", blur), ("output", output),
                                          ("sharp", sharp))}
    if not scored:
      print(f"warning: sequence {sequence.name} not scored: its {length} frames are no more "
            f"than skip_first + skip_last ({skip_first} + {skip_last})", file=sys.stderr)
    for tally, first in zip(tallies, seq_start):
      f = tally.frame_rows[first:]
      if f:
        tally.rows.append(dict(
            sequence=sequence.name, frames=len(f),
            psnr=_mean(r["psnr"] for r in f), ssim=_mean(r["ssim"] for r in f),
            blurry_psnr=_mean(r["blurry_psnr"] for r in f),
            blurry_ssim=_mean(r["blurry_ssim"] for r in f),
            mean_iterations=_mean(r["iterations"] for r in f)))
    done += length
    if progress:
      elapsed = time.perf_counter() - start
      eta = elapsed / done * (sum(lengths) - done) if done else 0.0
      print(f"  evaluated {index + 1}/{len(sequences)} sequences ({sequence.name}, "
            f"{done}/{sum(lengths)} frames), ETA {eta:.0f}s", file=sys.stderr, flush=True)
  if not tallies[0].frame_rows:
    raise EvalError("no frame was scored: sequences are shorter than skip_first + skip_last "
                    f"({skip_first} + {skip_last}) or have no sharp frames")
  return [t.summary() for t in tallies]


def evaluate_sequences(model: IFIRNN, params: Params, sequences: Sequence[Any], *,
                       skip_first: int = 4, skip_last: int = 1, max_sequences: int = -1,
                       max_frames: int = -1, iterations: int | None = None,
                       save_dir: str | os.PathLike | None = None, keep_example: bool = False,
                       progress: bool = False, adaptive: bool = False) -> EvalSummary:
  """Deblurs every sequence frame by frame and scores frames [skip_first, T - skip_last).

  sequences: paired `layouts.Sequence`s. max_sequences / max_frames (-1: all) shorten
  validation during training. save_dir: writes <save_dir>/<seq>/<frame name>.png.
  iterations: N (default: the model's). adaptive: keep a gated model's gate (greedy).
  """
  n = model.iterations if iterations is None else iterations
  return evaluate_settings(model, params, sequences, [Setting(n, adaptive)],
                           skip_first=skip_first, skip_last=skip_last,
                           max_sequences=max_sequences, max_frames=max_frames,
                           save_dir=save_dir, keep_example=keep_example,
                           progress=progress)[0]


def _save_frame(path: Path, frame: jax.Array) -> None:
  path = path.with_suffix(".png")
  path.parent.mkdir(parents=True, exist_ok=True)
  image_io.write_image(path, np.asarray(metrics.quantize(frame), np.uint8))


# ------------------------------------------------------------------ results
def format_sweep_table(summaries: Sequence[EvalSummary], model_name: str) -> str:
  """One row per setting: PSNR, SSIM, iterations per frame, ms per frame."""
  lines = [f"{model_name:28s} {'PSNR (dB)':>10s} {'SSIM':>8s} {'iters/frame':>12s} "
           f"{'ms/frame':>9s}   ({summaries[0].frames} frames)",
           f"{'blurry input':28s} {summaries[0].blurry_psnr:10.2f} "
           f"{summaries[0].blurry_ssim:8.4f}"]
  for s in summaries:
    lines.append(f"{s.setting.label:28s} {s.psnr:10.2f} {s.ssim:8.4f} "
                 f"{s.mean_iterations:12.2f} {s.ms_per_frame:9.2f}")
  return "\n".join(lines)


def format_table(summary: EvalSummary, model_name: str) -> str:
  """The console table: blurry input vs model, PSNR (dB) / SSIM over all scored frames,
  and the mean number of iterations per frame."""
  label = (f"{model_name} (adaptive, N<={summary.iterations})" if summary.adaptive
           else f"{model_name} (N={summary.iterations})")
  lines = [f"{'':28s} {'PSNR (dB)':>10s} {'SSIM':>8s} {'iters/frame':>12s}   "
           f"({summary.frames} frames, {len(summary.sequences)} sequences)",
           f"{'blurry input':28s} {summary.blurry_psnr:10.2f} {summary.blurry_ssim:8.4f}",
           f"{label:28s} {summary.psnr:10.2f} {summary.ssim:8.4f} "
           f"{summary.mean_iterations:12.2f}",
           f"{'gain':28s} {summary.psnr - summary.blurry_psnr:+10.2f} "
           f"{summary.ssim - summary.blurry_ssim:+8.4f}"]
  return "\n".join(lines)


def write_atomic(path: Path, content: str | bytes) -> Path:
  """Writes text or bytes to a temporary file beside `path`, then renames it to `path`."""
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(content.encode() if isinstance(content, str) else content)
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)
  except BaseException:
    Path(tmp).unlink(missing_ok=True)
    raise
  return path


def _umask() -> int:
  mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
  os.umask(mask)
  return mask


def csv_text(fields: list[str], rows: Iterable[Mapping[str, Any]]) -> str:
  """CSV with a header line; keys of `rows` not in `fields` are left out."""
  buffer = io.StringIO()
  writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore")
  writer.writeheader()
  writer.writerows(rows)
  return buffer.getvalue()


def write_results(summary: EvalSummary, out_dir: str | os.PathLike, model_name: str) -> Path:
  """<out_dir>/results.json, results.csv (per sequence + overall) and frames.csv (per
  scored frame), each written atomically."""
  out_dir = Path(out_dir)
  write_atomic(out_dir / "results.json",
                json.dumps(dict(model=model_name, **summary.as_dict()), indent=2))
  fields = ["sequence", "frames", "psnr", "ssim", "blurry_psnr", "blurry_ssim",
            "mean_iterations"]
  overall = dict(sequence="ALL", frames=summary.frames, psnr=summary.psnr,
                 ssim=summary.ssim, blurry_psnr=summary.blurry_psnr,
                 blurry_ssim=summary.blurry_ssim, mean_iterations=summary.mean_iterations)
  write_atomic(out_dir / "results.csv", csv_text(fields, [*summary.sequences, overall]))
  if summary.frame_rows:
    write_atomic(out_dir / "frames.csv", csv_text(
        ["sequence", "frame", "psnr", "ssim", "blurry_psnr", "blurry_ssim", "iterations"],
        summary.frame_rows))
  return out_dir


def write_before_after(example: dict[str, np.ndarray], path: str | os.PathLike) -> Path:
  """blurry | output | sharp side by side, labelled with their PSNR to sharp, as one PNG.

  Panels are enlarged (nearest neighbour) to at least `labels.MIN_PANEL_HEIGHT` pixels.
  """
  from ifirnn_jax import labels  # pylint: disable=g-import-not-at-top
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  sharp = np.asarray(example["sharp"], np.float32) / 255
  score = lambda key: float(metrics.psnr(np.asarray(example[key], np.float32) / 255, sharp))  # noqa: E731
  image_io.write_image(path, labels.labelled_panels([
      (f"blurry  PSNR {score('blurry'):.2f} dB", example["blurry"]),
      (f"output  PSNR {score('output'):.2f} dB", example["output"]),
      ("sharp", example["sharp"])]))
  return path


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
  parser.add_argument("--layout", default="gopro", choices=("gopro", "dvd", "bsd", "generic"))
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


def _load(args: argparse.Namespace) -> tuple[IFIRNN, Params]:
  from ifirnn_jax import checkpoint, default_config, weights
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
  summaries = evaluate_settings(model, params, sequences, settings,
                                skip_first=args.skip_first, skip_last=args.skip_last,
                                save_dir=args.save_frames, progress=True)
  summary = summaries[primary]
  print(format_table(summary, model.name))
  print(f"{summary.frames_per_second:.2f} frames/s (streaming, compile excluded)")
  write_results(summary, out, model.name)
  print(f"results: {out / 'results.json'}, {out / 'results.csv'}, {out / 'frames.csv'}")
  if args.sweep:
    from ifirnn_jax import plots  # imports matplotlib; only needed here
    sizes = [image_io.read_image_size(s.blur_paths[0]) for s in sequences]
    print(format_sweep_table(summaries, model.name))
    paths = plots.write_sweep(summaries, out, model.name, frame_sizes=sizes)
    print("sweep: " + ", ".join(str(p) for p in paths))


def main(argv: Sequence[str] | None = None) -> int:
  """The command line; returns the exit status (0, or 2 for bad input)."""
  from data_pipeline.errors import DataError
  from ifirnn_jax.checkpoint import CheckpointError
  from ifirnn_jax.weights import WeightsError
  try:
    args = _parse(argv)
  except SystemExit as e:  # --help, or a usage error (already printed, status 2)
    return int(e.code or 0)
  from data_pipeline import termination
  try:
    with termination.sigterm_as_interrupt():
      run(args)
  except (EvalError, DataError, WeightsError, CheckpointError, ValueError, OSError) as e:
    message = " ".join(str(e).split()) or type(e).__name__
    print(f"error: {message}", file=sys.stderr)
    return 2
  except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM
    what, status = termination.describe(e)
    print(f"{what}; no results written", file=sys.stderr)
    return status
  return 0


if __name__ == "__main__":
  from ifirnn_jax import huge_pages
  huge_pages.restart_with_huge_pages()  # re-executes once (huge_pages.py)
  sys.exit(main())
