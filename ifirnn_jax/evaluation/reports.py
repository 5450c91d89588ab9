"""Reporting evaluation results: console tables, results files, the before/after image.

`write_results` writes results.json, results.csv (per sequence and overall) and
frames.csv (per scored frame) atomically; `write_before_after` one labelled PNG.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from data_pipeline import image_io, pixels
from data_pipeline.safe_io import files, outputs
from data_pipeline.commandline.console import plural
from data_pipeline.safe_io.files import Progress
from ifirnn_jax.evaluation import captions, metrics
from ifirnn_jax.evaluation.protocol import EvalSummary, FrameResult


def with_progress(results: Iterable[FrameResult], total_frames: int, settings_count: int,
                  label: str = "evaluate") -> Iterator[FrameResult]:
  """Passes `evaluation.frame_results` on, showing frames done and ETA on stderr."""
  progress = Progress(total_frames, label)
  done = 0
  for result in results:
    if result.setting == settings_count - 1:
      done += 1
      progress.update(done)
    yield result
  progress.finish()


def unscored_warnings(summary: EvalSummary, skip_first: int, skip_last: int) -> list[str]:
  """One `warning: ...` line per sequence of which no frame was scored."""
  lines = []
  for name, frames in summary.unscored:
    why = (f"its {frames} frames are no more than skip_first + skip_last "
           f"({skip_first} + {skip_last})" if frames <= skip_first + skip_last
           else "it has no sharp frames")
    lines.append(f"warning: sequence {name} not scored: {why}")
  return lines


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
           f"({plural(summary.frames, 'frame')}, {plural(len(summary.sequences), 'sequence')})",
           f"{'blurry input':28s} {summary.blurry_psnr:10.2f} {summary.blurry_ssim:8.4f}",
           f"{label:28s} {summary.psnr:10.2f} {summary.ssim:8.4f} "
           f"{summary.mean_iterations:12.2f}",
           f"{'gain':28s} {summary.psnr - summary.blurry_psnr:+10.2f} "
           f"{summary.ssim - summary.blurry_ssim:+8.4f}"]
  return "\n".join(lines)


def format_sequence_table(summary: EvalSummary) -> str:
  """One row per scored sequence: frames, PSNR (dB) and SSIM of the blurry input and the
  model, and the PSNR gain."""
  lines = [f"{'sequence':28s} {'frames':>6s} {'blurry PSNR':>11s} {'PSNR (dB)':>10s} "
           f"{'gain':>7s} {'blurry SSIM':>11s} {'SSIM':>8s}"]
  for row in summary.sequences:
    lines.append(f"{row['sequence']:28s} {row['frames']:6d} {row['blurry_psnr']:11.2f} "
                 f"{row['psnr']:10.2f} {row['psnr'] - row['blurry_psnr']:+7.2f} "
                 f"{row['blurry_ssim']:11.4f} {row['ssim']:8.4f}")
  return "\n".join(lines)


def csv_text(fields: list[str], rows: Iterable[Mapping[str, Any]]) -> str:
  """CSV with a header line; keys of `rows` not in `fields` are left out."""
  buffer = io.StringIO()
  writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore")
  writer.writeheader()
  writer.writerows(rows)
  return buffer.getvalue()


# The files `write_results` writes.
RESULT_FILES = ("results.json", "results.csv", "frames.csv")


def write_results(summary: EvalSummary, out_dir: str | os.PathLike, model_name: str,
                  scored: Mapping[str, Any] | None = None,
                  shown_dir: str | os.PathLike | None = None) -> Path:
  """<out_dir>/results.json, results.csv (per sequence + overall) and frames.csv (per
  scored frame), each written atomically.

  `scored` (e.g. the weight file or workdir and step) goes into results.json. A failed
  write raises DataError naming the file, in `shown_dir` (where the files are meant to
  end up when `out_dir` is a temporary folder) if given.
  """
  out_dir = Path(out_dir)
  shown = Path(shown_dir) if shown_dir is not None else out_dir

  def put(name: str, text: str) -> None:
    try:
      files.write_text_atomic(out_dir / name, text)
    except OSError as e:
      raise outputs.write_error(shown / name, e) from None

  put("results.json", json.dumps(dict(model=model_name, **(scored or {}),
                                      **summary.as_dict()), indent=2))
  fields = ["sequence", "frames", "psnr", "ssim", "blurry_psnr", "blurry_ssim",
            "mean_iterations"]
  overall = dict(sequence="ALL", frames=summary.frames, psnr=summary.psnr,
                 ssim=summary.ssim, blurry_psnr=summary.blurry_psnr,
                 blurry_ssim=summary.blurry_ssim, mean_iterations=summary.mean_iterations)
  put("results.csv", csv_text(fields, [*summary.sequences, overall]))
  if summary.frame_rows:
    put("frames.csv", csv_text(
        ["sequence", "frame", "psnr", "ssim", "blurry_psnr", "blurry_ssim", "iterations"],
        summary.frame_rows))
  return out_dir


def write_before_after(example: dict[str, np.ndarray], path: str | os.PathLike) -> Path:
  """blurry | output | sharp side by side, labelled with their PSNR to sharp, as one PNG.

  Panels are enlarged (nearest neighbour) to at least `captions.MIN_PANEL_HEIGHT` pixels.
  """
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  sharp = pixels.to_unit_float(np.asarray(example["sharp"]))
  score = lambda key: float(metrics.psnr(pixels.to_unit_float(np.asarray(example[key])), sharp))  # noqa: E731
  image_io.write_image(path, captions.labelled_panels([
      (f"blurry  PSNR {score('blurry'):.2f} dB", example["blurry"]),
      (f"output  PSNR {score('output'):.2f} dB", example["output"]),
      ("sharp", example["sharp"])]))
  return path
