"""Evaluation with the paper's protocol: `python -m ifirnn_jax.evaluate`.

Every test sequence runs through the recurrence frame by frame (constant memory); the
scored frames skip the first `skip_first` (4) and the last `skip_last` (1) frames of
each sequence. Metrics are those of `metrics.py` (8-bit quantised RGB PSNR, Gaussian
SSIM). Results: a table on the console, JSON and CSV written atomically.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import jax
import numpy as np

from data_pipeline import eval_pipeline, layouts
from ifirnn_jax import metrics
from ifirnn_jax.models import IFIRNN, Params


@dataclasses.dataclass
class EvalSummary:
  """Frame-averaged results over all scored frames, plus per-sequence rows."""

  psnr: float
  ssim: float
  blurry_psnr: float
  blurry_ssim: float
  frames: int
  frames_per_second: float
  iterations: int
  sequences: list[dict[str, Any]]
  example: dict[str, np.ndarray] | None = None  # uint8 [H, W, 3] blurry / output / sharp

  def as_dict(self) -> dict[str, Any]:
    d = dataclasses.asdict(self)
    d.pop("example")
    return d


def evaluate_sequences(model: IFIRNN, params: Params, sequences: Sequence[Any], *,
                       skip_first: int = 4, skip_last: int = 1, max_sequences: int = -1,
                       max_frames: int = -1, iterations: int | None = None,
                       save_dir: str | os.PathLike | None = None, keep_example: bool = False,
                       progress: bool = False) -> EvalSummary:
  """Deblurs every sequence frame by frame and scores frames [skip_first, T - skip_last).

  sequences: paired `layouts.Sequence`s. max_sequences / max_frames (-1: all) shorten
  validation during training. save_dir: writes <save_dir>/<seq>/<frame name>.png.
  """
  if max_sequences > 0:
    sequences = list(sequences)[:max_sequences]
  n = model.iterations if iterations is None else iterations
  rows, all_psnr, all_ssim, all_bpsnr, all_bssim = [], [], [], [], []
  example = None
  timed_frames, timed_seconds = 0, 0.0
  start = time.perf_counter()
  for index, sequence in enumerate(sequences):
    length = sequence.num_frames if max_frames <= 0 else min(sequence.num_frames, max_frames)
    scored = range(skip_first, max(skip_first, length - skip_last))
    seq_psnr, seq_ssim, seq_bpsnr, seq_bssim = [], [], [], []
    state = None
    for t, (name, blur, sharp) in enumerate(eval_pipeline.iter_eval_frames(sequence)):
      if t >= length:
        break
      if state is None:
        state = model.initial_state(*blur.shape[:2])
      tick = time.perf_counter()
      output, state = model.step(params, blur, state, iterations=n)
      output = np.asarray(output)  # waits for the device
      if t > 0:  # the first frame of a sequence includes compilation
        timed_frames += 1
        timed_seconds += time.perf_counter() - tick
      if save_dir is not None:
        _save_frame(Path(save_dir) / sequence.name / name, output)
      if t not in scored or sharp is None:
        continue
      p, s = (float(v) for v in metrics.psnr_ssim(output, sharp))
      bp, bs = (float(v) for v in metrics.psnr_ssim(blur, sharp))
      seq_psnr.append(p); seq_ssim.append(s); seq_bpsnr.append(bp); seq_bssim.append(bs)
      if keep_example and example is None and t == scored.start + len(scored) // 2:
        example = {k: np.asarray(metrics.quantize(v), np.uint8)
                   for k, v in (("blurry", blur), ("output", output), ("sharp", sharp))}
    if seq_psnr:
      rows.append(dict(sequence=sequence.name, frames=len(seq_psnr),
                       psnr=float(np.mean(seq_psnr)), ssim=float(np.mean(seq_ssim)),
                       blurry_psnr=float(np.mean(seq_bpsnr)), blurry_ssim=float(np.mean(seq_bssim))))
      all_psnr += seq_psnr; all_ssim += seq_ssim; all_bpsnr += seq_bpsnr; all_bssim += seq_bssim
    if progress:
      elapsed = time.perf_counter() - start
      eta = elapsed / (index + 1) * (len(sequences) - index - 1)
      print(f"  evaluated {index + 1}/{len(sequences)} sequences ({sequence.name}), "
            f"ETA {eta:.0f}s", file=sys.stderr, flush=True)
  if not all_psnr:
    raise ValueError("no frame was scored: sequences are shorter than skip_first + skip_last "
                     f"({skip_first} + {skip_last}) or have no sharp frames")
  return EvalSummary(
      psnr=float(np.mean(all_psnr)), ssim=float(np.mean(all_ssim)),
      blurry_psnr=float(np.mean(all_bpsnr)), blurry_ssim=float(np.mean(all_bssim)),
      frames=len(all_psnr), iterations=n, sequences=rows, example=example,
      frames_per_second=timed_frames / timed_seconds if timed_seconds else float("nan"))


def _save_frame(path: Path, frame: jax.Array) -> None:
  from data_pipeline import image_io
  path = path.with_suffix(".png")
  path.parent.mkdir(parents=True, exist_ok=True)
  image_io.write_image(path, np.asarray(metrics.quantize(frame), np.uint8))


def format_table(summary: EvalSummary, model_name: str) -> str:
  """The console table: blurry input vs model, PSNR (dB) / SSIM over all scored frames."""
  lines = [f"{'':24s} {'PSNR (dB)':>10s} {'SSIM':>8s}   ({summary.frames} frames, "
           f"{len(summary.sequences)} sequences)",
           f"{'blurry input':24s} {summary.blurry_psnr:10.2f} {summary.blurry_ssim:8.4f}",
           f"{model_name + f' (N={summary.iterations})':24s} {summary.psnr:10.2f} "
           f"{summary.ssim:8.4f}",
           f"{'gain':24s} {summary.psnr - summary.blurry_psnr:+10.2f} "
           f"{summary.ssim - summary.blurry_ssim:+8.4f}"]
  return "\n".join(lines)


def _write_atomic(path: Path, text: str) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f".{path.name}.tmp")
  tmp.write_text(text)
  os.replace(tmp, path)


def write_results(summary: EvalSummary, out_dir: str | os.PathLike, model_name: str) -> Path:
  """<out_dir>/results.json and results.csv (per sequence + overall), written atomically."""
  import json
  out_dir = Path(out_dir)
  _write_atomic(out_dir / "results.json",
                json.dumps(dict(model=model_name, **summary.as_dict()), indent=2))
  buffer = io.StringIO()
  fields = ["sequence", "frames", "psnr", "ssim", "blurry_psnr", "blurry_ssim"]
  writer = csv.DictWriter(buffer, fieldnames=fields)
  writer.writeheader()
  writer.writerows(summary.sequences)
  writer.writerow(dict(sequence="ALL", frames=summary.frames, psnr=summary.psnr,
                       ssim=summary.ssim, blurry_psnr=summary.blurry_psnr,
                       blurry_ssim=summary.blurry_ssim))
  _write_atomic(out_dir / "results.csv", buffer.getvalue())
  return out_dir


def write_before_after(example: dict[str, np.ndarray], path: str | os.PathLike) -> Path:
  """blurry | output | sharp side by side, as one PNG (atomic)."""
  from data_pipeline import image_io
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  gap = np.full((example["blurry"].shape[0], 4, 3), 255, np.uint8)
  image_io.write_image(path, np.concatenate(
      [example["blurry"], gap, example["output"], gap, example["sharp"]], axis=1))
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
  parser.add_argument("--iterations", type=int, help="N at inference (default: the model's)")
  parser.add_argument("--skip-first", type=int, default=4)
  parser.add_argument("--skip-last", type=int, default=1)
  parser.add_argument("--out", default=None, help="results folder (default: "
                      "<workdir>/eval or ./eval_<model>)")
  parser.add_argument("--save-frames", default=None, help="write output frames here")
  return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
  from data_pipeline.errors import DataError
  from ifirnn_jax import checkpoint, default_config, weights
  args = _parse(argv)
  try:
    if args.iterations is not None and args.iterations < 1:
      raise ValueError(f"--iterations must be >= 1, got {args.iterations}")
    if args.workdir:
      model, params = checkpoint.load_checkpoint(args.workdir, args.step, best=args.best)
    else:
      model, params = weights.load_model(args.weights)
      if args.model:
        expected = dataclasses.replace(model, **default_config.model_fields(args.model))
        params = weights.load_weights(args.weights, expected)
        model = expected
    sequences = layouts.find_sequences(
        args.data, args.layout, args.split,
        **({"blur_dir": args.blur_dir} if args.layout == "gopro" else {}))
    summary = evaluate_sequences(model, params, sequences, skip_first=args.skip_first,
                                 skip_last=args.skip_last, iterations=args.iterations,
                                 save_dir=args.save_frames, progress=True)
  except (DataError, weights.WeightsError, checkpoint.CheckpointError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(format_table(summary, model.name))
  print(f"{summary.frames_per_second:.2f} frames/s (streaming, compile excluded)")
  out = Path(args.out) if args.out else (Path(args.workdir) / "eval" if args.workdir
                                         else Path(f"eval_{model.name}"))
  write_results(summary, out, model.name)
  print(f"results: {out / 'results.json'}, {out / 'results.csv'}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
