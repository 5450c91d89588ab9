"""The paper's Fig. 4 and Fig. 5 from an evaluation sweep over N (`evaluate --sweep`).

  * Fig. 4, `best_iterations_figure`: for every scored frame, the N whose output has
    the best PSNR; bars count the frames best restored by each N. A second set of
    bars counts the iterations a gated model's gate chose per frame (adaptive).
  * Fig. 5, `psnr_time_figure`: PSNR against milliseconds per frame, one point per N
    joined by a line, the adaptive (gated) setting as its own marker.

`sweep_data` computes the numbers behind both; `write_sweep` writes the PNGs and
their data (JSON, CSV) atomically. Figures are drawn with matplotlib's object API on
the Agg canvas (no pyplot state) and returned as PNG bytes.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from data_pipeline.safe_io import files
from ifirnn_jax.evaluation.protocol import EvalError, EvalSummary
from ifirnn_jax.evaluation.reports import csv_text


# ------------------------------------------------------------------ data
def best_iterations(summaries: Sequence[EvalSummary]) -> list[int]:
  """For each scored frame, the fixed N whose output has the highest PSNR (Fig. 4).

  Only fixed settings take part; a tie goes to the smallest N (fewer iterations
  restore that frame as well).
  """
  fixed = sorted((s for s in summaries if not s.adaptive), key=lambda s: s.iterations)
  if not fixed:
    raise EvalError("best_iterations needs at least one fixed-N setting")
  keys = [(r["sequence"], r["frame"]) for r in fixed[0].frame_rows]
  for s in fixed[1:]:
    if [(r["sequence"], r["frame"]) for r in s.frame_rows] != keys:
      raise EvalError("the settings scored different frames")
  psnr = np.array([[r["psnr"] for r in s.frame_rows] for s in fixed])  # [settings, frames]
  return [fixed[i].iterations for i in np.argmax(psnr, axis=0)]  # argmax: first of ties


def sweep_data(summaries: Sequence[EvalSummary], model_name: str,
               frame_sizes: Sequence[tuple[int, int]] = ()) -> dict[str, Any]:
  """The numbers behind Fig. 4 and Fig. 5 (JSON-ready)."""
  best = best_iterations(summaries)
  fixed = sorted((s for s in summaries if not s.adaptive), key=lambda s: s.iterations)
  counts = {s.iterations: best.count(s.iterations) for s in fixed}
  adaptive = [s for s in summaries if s.adaptive]
  gate_counts = None
  if adaptive:
    chosen = [int(round(r["iterations"])) for r in adaptive[0].frame_rows]
    gate_counts = {n: chosen.count(n) for n in range(1, adaptive[0].iterations + 1)}
  settings = [dict(setting=s.setting.label, iterations=s.iterations, adaptive=s.adaptive,
                   mean_iterations=s.mean_iterations, psnr=s.psnr, ssim=s.ssim,
                   ms_per_frame=s.ms_per_frame, frames_per_second=s.frames_per_second,
                   best_restored_frames=None if s.adaptive else counts[s.iterations])
              for s in summaries]
  return dict(
      model=model_name, frames=summaries[0].frames,
      sequences=len(summaries[0].sequences), max_iterations=fixed[-1].iterations,
      frame_sizes=[f"{h}x{w}" for h, w in sorted(set(frame_sizes))],
      device=jax.devices()[0].device_kind, settings=settings,
      best_iterations_counts={str(n): c for n, c in counts.items()},
      gate_iterations_counts=(None if gate_counts is None
                              else {str(n): c for n, c in gate_counts.items()}),
      notes=("best_iterations_counts (Fig. 4): for each scored frame the fixed N with the "
             "highest PSNR; ties go to the smallest N. ms_per_frame (Fig. 5): streaming "
             "step incl. copy to host, first frame of each sequence (compilation) "
             "excluded, at frame_sizes on device. The adaptive setting masks skipped "
             "iterations, so its time is that of its maximum N."))


# ------------------------------------------------------------------ figures
def _png(figure: Figure) -> bytes:
  FigureCanvasAgg(figure)
  buffer = io.BytesIO()
  figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
  return buffer.getvalue()


def best_iterations_figure(best_counts: Mapping[int, int], total_frames: int, title: str,
                           gate_counts: Mapping[int, int] | None = None) -> bytes:
  """Fig. 4: frames best restored by each N (bars), all scored frames (dashed line).

  best_counts: {N: number of frames whose best PSNR came from N iterations}.
  gate_counts: {N: number of frames on which the adaptive gate ran N iterations}.
  """
  iterations = sorted(best_counts)
  x = np.arange(len(iterations), dtype=float)
  width = 0.4 if gate_counts else 0.7
  figure = Figure(figsize=(5.5, 3.8))
  ax = figure.add_subplot()
  offset = -width / 2 if gate_counts else 0.0
  ax.bar(x + offset, [best_counts[n] for n in iterations], width, color="tab:blue",
         label="frames best restored with N iterations")
  if gate_counts:
    ax.bar(x + width / 2, [gate_counts.get(n, 0) for n in iterations], width,
           color="tab:green", label="frames the gate ran N iterations on (adaptive)")
  ax.axhline(total_frames, color="tab:orange", linestyle="--",
             label=f"all scored frames ({total_frames})")
  ax.set_xticks(x, [str(n) for n in iterations])
  ax.set_xlabel("# iterations N")
  ax.set_ylabel("# frames")
  ax.set_ylim(0, total_frames * 1.35)
  ax.set_title(title, fontsize=9)
  ax.legend(fontsize=7, loc="upper left")
  return _png(figure)


def psnr_time_figure(fixed: Sequence[tuple[int, float, float]], title: str,
                     adaptive: tuple[float, float, float] | None = None) -> bytes:
  """Fig. 5: PSNR (dB) against time per frame (ms).

  fixed: (N, ms per frame, PSNR) for each fixed N, joined by a line and labelled HN.
  adaptive: (mean iterations per frame, ms per frame, PSNR) of the gated model's
    adaptive setting, drawn as a star.
  """
  fixed = sorted(fixed)
  figure = Figure(figsize=(5.5, 3.8))
  ax = figure.add_subplot()
  ax.plot([ms for _, ms, _ in fixed], [p for _, _, p in fixed], "o-", color="tab:blue",
          label="fixed N")
  for n, ms, p in fixed:
    ax.annotate(f"H{n}", (ms, p), textcoords="offset points", xytext=(4, 4), fontsize=8)
  if adaptive is not None:
    mean_n, ms, p = adaptive
    ax.plot([ms], [p], "*", markersize=13, color="tab:red",
            label=f"adaptive (gate kept, {mean_n:.2f} iterations/frame)")
  ax.set_xlabel("time per frame (ms)")
  ax.set_ylabel("PSNR (dB)")
  ax.grid(alpha=0.3)
  ax.set_title(title, fontsize=9)
  ax.legend(fontsize=7, loc="best")
  return _png(figure)


# ------------------------------------------------------------------ files
def write_sweep(summaries: Sequence[EvalSummary], out_dir: str | os.PathLike,
                model_name: str, frame_sizes: Sequence[tuple[int, int]] = ()) -> list[Path]:
  """Writes Fig. 4 / Fig. 5 (PNG) and their data into out_dir, each file atomically.

  Files: sweep.json (everything), sweep_frames.csv (per-frame PSNR of every setting
  and the best N), fig4_best_iterations.{png,csv}, fig5_psnr_time.{png,csv}.
  """
  out_dir = Path(out_dir)
  data = sweep_data(summaries, model_name, frame_sizes)
  best = best_iterations(summaries)
  counts = {int(n): c for n, c in data["best_iterations_counts"].items()}
  gate = data["gate_iterations_counts"]
  gate = None if gate is None else {int(n): c for n, c in gate.items()}
  adaptive = next((s for s in summaries if s.adaptive), None)
  fixed = sorted((s for s in summaries if not s.adaptive), key=lambda s: s.iterations)
  size = ", ".join(data["frame_sizes"]) or "?"
  written = []

  def put(name: str, content: str | bytes) -> None:
    written.append(files.write_bytes_atomic(
        out_dir / name, content.encode() if isinstance(content, str) else content))

  put("sweep.json", json.dumps(data, indent=2))
  put("fig4_best_iterations.csv", csv_text(
      ["iterations", "best_restored_frames", "gate_chose_frames"],
      [dict(iterations=n, best_restored_frames=c,
            gate_chose_frames="" if gate is None else gate.get(n, 0))
       for n, c in counts.items()]))
  put("fig5_psnr_time.csv", csv_text(
      ["setting", "iterations", "adaptive", "mean_iterations", "ms_per_frame",
       "frames_per_second", "psnr", "ssim", "best_restored_frames"], data["settings"]))
  frame_rows = []
  for i, row in enumerate(fixed[0].frame_rows):
    r = dict(sequence=row["sequence"], frame=row["frame"], blurry_psnr=row["blurry_psnr"])
    r.update({f"psnr_N{s.iterations}": s.frame_rows[i]["psnr"] for s in fixed})
    if adaptive is not None:
      r.update(psnr_adaptive=adaptive.frame_rows[i]["psnr"],
               adaptive_iterations=adaptive.frame_rows[i]["iterations"])
    r["best_iterations"] = best[i]
    frame_rows.append(r)
  put("sweep_frames.csv", csv_text(list(frame_rows[0]), frame_rows))
  put("fig4_best_iterations.png", best_iterations_figure(
      counts, data["frames"], gate_counts=gate,
      title=f"{model_name}: frames best restored by N iterations ({data['frames']} frames, "
            f"{size})"))
  put("fig5_psnr_time.png", psnr_time_figure(
      [(s.iterations, s.ms_per_frame, s.psnr) for s in fixed],
      adaptive=(None if adaptive is None else
                (adaptive.mean_iterations, adaptive.ms_per_frame, adaptive.psnr)),
      title=f"{model_name}: PSNR vs time per frame ({size}, {data['device']})"))
  return written
