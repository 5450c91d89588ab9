"""The printed tables of each mode."""

from __future__ import annotations

from typing import Any

from data_pipeline.commandline.console import plural
from ifirnn_jax.runtime import huge_pages


def _pages(report: dict[str, Any]) -> str:
  tunables = report["environment"].get("glibc_tunables") or ""
  return (f"pages: 2 MiB ({huge_pages.TUNABLE})" if huge_pages.TUNABLE in tunables
          else "pages: glibc default")


def _precision(report: dict[str, Any]) -> str:
  """On accelerators: which float32 precision the convs and matmuls ran at."""
  env = report["environment"]
  if env["backend"] == "cpu":
    return ""  # XLA:CPU always computes float32 in full float32
  precision = env.get("matmul_precision")
  if precision is None:
    return ("; float32 precision: JAX's default (TF32 on NVIDIA GPUs since Ampere; "
            "JAX_DEFAULT_MATMUL_PRECISION=highest for full float32)")
  return f"; float32 precision: {precision} (JAX_DEFAULT_MATMUL_PRECISION)"


def inference_table(report: dict[str, Any]) -> str:
  columns = [
      ("model", lambda r: r["model"]),
      ("GFLOP spec", lambda r: f"{r['spec_gflop_per_frame']:.1f}"),
      ("GFLOP XLA", lambda r: _fmt(r["xla_gflop_per_frame"], ".1f")),
      ("compile s", lambda r: f"{r['compile_s']['stream_step']:.1f}"),
      ("ms/frame", lambda r: f"{1000 * r['latency_s']['mean']:.1f}"),
      ("+-", lambda r: f"{1000 * r['latency_s']['std']:.1f}"),
      ("stream fps", lambda r: f"{r['stream_fps']:.3g}"),
      ("clip fps", lambda r: _fmt(r["batch_fps"], ".3g")),
      ("GFLOP/s", lambda r: f"{r['achieved_gflops_per_s']:.1f}"),
      ("% matmul", lambda r: f"{100 * r['fraction_of_matmul_peak']:.0f}"),
      ("peak MiB", lambda r: _fmt(r["peak_memory_bytes"] and r["peak_memory_bytes"] / 2**20,
                                  ".0f")),
      ("torch fps", lambda r: _fmt(r["torch"] and r["torch"]["stream_fps"], ".3g")),
      ("ours/torch", lambda r: _fmt(r["ours_over_torch_fps"], ".2f")),
      ("ours/torch best", lambda r: _fmt(r["ours_over_torch_fps_best"], ".2f")),
  ]
  s = report["settings"]
  title = (f"Inference, {s['width']}x{s['height']}, {s['dtype']}, {report['environment']['backend']}"
           f" ({report['environment']['device_kind']}), 3x3 convs: {s['conv_impl']}; matmul "
           + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in report["matmul_gflops_per_s"].items())
           + f"; clip = {s['batch']} x {s['frames']} frames; peak memory = "
           + (report["results"][0]["peak_memory_method"] if report["results"] else "-")
           + f"; {_pages(report)}{_precision(report)}")
  return title + "\n" + _table(columns, report["results"])


def train_table(report: dict[str, Any]) -> str:
  columns = [
      ("variant", lambda r: r["variant"]),
      ("compile s", lambda r: f"{r['compile_s']:.1f}"),
      ("s/step median", lambda r: f"{r['step_s']['median']:.3f}"),
      ("min", lambda r: f"{r['step_s']['min']:.3f}"),
      ("mean", lambda r: f"{r['step_s']['mean']:.3f}"),
      ("steps/s", lambda r: f"{r['steps_per_s']:.3g}"),
      ("best steps/s", lambda r: f"{r['steps_per_s_best']:.3g}"),
      ("peak MiB", lambda r: _fmt(r["peak_memory_bytes"] and r["peak_memory_bytes"] / 2**20,
                                  ".0f")),
      ("RSS growth MiB", lambda r: _fmt(r.get("rss_growth_bytes") and
                                        r["rss_growth_bytes"] / 2**20, ".0f")),
      ("first loss", lambda r: _fmt(r["first_loss"], ".6g")),
  ]
  s = report["settings"]
  title = (f"Train step, {s['models'][0]} widths {'/'.join(map(str, s['widths']))}, "
           f"batch {s['batch']} x {s['frames']} frames x {s['height']}x{s['width']}, "
           f"{s['dtype']}, {report['environment']['backend']}, 3x3 convs: "
           f"{s['conv_impl']}; memory: "
           f"{report['results'][0]['peak_memory_method'] if report['results'] else '-'}; "
           f"{_pages(report)}{_precision(report)}")
  best = report["ratios_steps_per_s_best"]
  ratios = "\n".join(f"  {k}: {v:.2f} (best steps: {best[k]:.2f})"
                     for k, v in report["ratios_steps_per_s"].items())
  text = (title + "\n" + _table(columns, report["results"])
          + "\nsteps/s ratios (median steps):\n" + ratios)
  if "pipeline" in report:
    pipe = report["pipeline"]
    lines = [f"input pipeline on {pipe['root']} ({plural(pipe['sequences'], 'sequence')}, "
             f"cache_frames "
             f"{pipe['cache_frames']}), measured alone: {pipe['clips_per_s']:.1f} clips/s"]
    lines += [f"  train step {r['variant']}: {r['clips_per_s']:.2f} clips/s -> pipeline / step "
              f"= {r['pipeline_clips_per_s_over_step_clips_per_s']:.1f}x"
              for r in report["results"]]
    text += "\n" + "\n".join(lines)
  return text


def _fmt(value: float | None, spec: str) -> str:
  return "-" if value is None else format(value, spec)


def _table(columns, rows) -> str:
  cells = [[header for header, _ in columns]] + [[get(r) for _, get in columns] for r in rows]
  widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
  lines = ["  ".join(c.rjust(wd) for c, wd in zip(row, widths)) for row in cells]
  lines.insert(1, "  ".join("-" * wd for wd in widths))
  return "\n".join(lines)


def memory_table(report: dict[str, Any]) -> str:
  rows = report["results"]
  first = rows[0]["peak_rss_mib"]
  lines = [f"deblur peak RSS, {report['model']} widths {report['widths']}, "
           f"{report['width']}x{report['height']} H.264 in and out, one fresh process each",
           f"{'frames':>8} {'peak RSS MiB':>13} {'vs first':>9} {'seconds':>8}"]
  for r in rows:
    lines.append(f"{r['frames']:>8} {r['peak_rss_mib']:>13.1f} "
                 f"{100 * (r['peak_rss_mib'] / first - 1):>+8.1f}% {r['seconds']:>8.1f}")
  return "\n".join(lines)
