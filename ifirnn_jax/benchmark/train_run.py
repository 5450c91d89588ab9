"""--mode train: each train-step variant timed in turns, ratios, and the input pipeline."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np

from data_pipeline.safe_io import files
from ifirnn_jax.benchmark.flops import spec_gflops
from ifirnn_jax.benchmark.probes import BLOCK, interleave, summarize
from ifirnn_jax.benchmark.settings import BenchmarkError, BenchmarkSettings, make_model, unroll_label
from ifirnn_jax.benchmark.train_step import variant_name
from ifirnn_jax.benchmark.variants import ChildVariant, InProcessVariant, ProcessGroupVariant


def run_train(settings: BenchmarkSettings, device: jax.Device, report: dict[str, Any],
              save: Callable[[], None]) -> None:
  from ifirnn_jax.storage import weights
  name = settings.models[0]
  model = make_model(name, settings)
  b, t, h, w = settings.batch, settings.frames, settings.height, settings.width
  report["spec_gflop_forward_per_step"] = spec_gflops(model, h, w) * b * t
  jobs = [dict(framework="jax", scan_unroll=u, num_processes=settings.processes,
               cpu_devices=settings.cpu_devices) for u in settings.scan_unroll]
  if settings.torch:
    jobs.append(dict(framework="torch", scan_unroll=None))
  open_variant = ChildVariant if settings.isolate else InProcessVariant
  variants: list[Any] = []
  with tempfile.TemporaryDirectory(prefix="ifirnn_bench_") as tmp:
    rng = np.random.default_rng(settings.seed)
    sharp = rng.uniform(size=(b, t, h, w, 3)).astype(np.float32)
    blur = np.clip(sharp + rng.normal(0, 0.05, sharp.shape), 0, 1).astype(np.float32)
    batch_path = Path(tmp) / "batch.npz"
    np.savez(batch_path, blur=blur, sharp=sharp)
    weights_path = weights.save_weights(model.init(jax.random.key(settings.seed)),
                                        Path(tmp) / "init.safetensors", model=model)
    try:
      for i, job in enumerate(jobs):  # set up and compile one at a time
        files.status(f"[{i + 1}/{len(jobs)}] {name} train step, {variant_name(job)}: "
                 f"setting up and compiling ...")
        job.update(model=name, settings=dataclasses.asdict(settings),
                   weights_path=str(weights_path), batch_path=str(batch_path))
        variants.append(ProcessGroupVariant(job) if job.get("num_processes", 1) > 1
                        else open_variant(job))
      files.status(f"timing: {settings.warmup} warm-up + {settings.repeats} steps of "
               f"{b}x{t}x{h}x{w} per variant, the variants taking turns (blocks of "
               f"{BLOCK} steps, each after an untimed one) ...")
      times = interleave(variants, settings.warmup, settings.repeats)
      summaries = [v.summary() for v in variants]
    finally:
      for v in variants:
        v.close()
  report["results"] = []
  for job, seconds, summary in zip(jobs, times, summaries):
    step_s = summarize(seconds)
    report["results"].append(dict(
        variant=variant_name(job), framework=job["framework"],
        scan_unroll=None if job["scan_unroll"] is None else unroll_label(job["scan_unroll"]),
        step_s=step_s, steps_per_s=1 / step_s["median"], steps_per_s_best=1 / step_s["min"],
        achieved_gflops_forward_per_s=report["spec_gflop_forward_per_step"] / step_s["median"],
        **summary))
  by_variant = {r["variant"]: r for r in report["results"]}
  pairs = []
  torch_result = by_variant.get("torch")
  for r in report["results"]:
    if torch_result and r is not torch_result:
      pairs.append((f"{r['variant']} / torch", r, torch_result))
      r["first_loss_rel_diff_vs_torch"] = (abs(r["first_loss"] - torch_result["first_loss"])
                                           / abs(torch_result["first_loss"]))
  by_unroll = {r["scan_unroll"]: r for r in report["results"] if r["framework"] == "jax"}
  full, rolled = by_unroll.get("full"), by_unroll.get("1")
  if full and rolled:
    pairs.append((f"{full['variant']} / {rolled['variant'].removeprefix('jax ')}", full,
                  rolled))
  # Median steps (typical) and fastest steps (least disturbed by other work on the machine).
  report["ratios_steps_per_s"] = {k: a["steps_per_s"] / b["steps_per_s"] for k, a, b in pairs}
  report["ratios_steps_per_s_best"] = {k: a["steps_per_s_best"] / b["steps_per_s_best"]
                                       for k, a, b in pairs}
  for r in report["results"]:
    r["clips_per_s"] = r["steps_per_s"] * b
  save()
  if settings.data:
    report["pipeline"] = measure_pipeline(settings)
    for r in report["results"]:
      r["pipeline_clips_per_s_over_step_clips_per_s"] = (report["pipeline"]["clips_per_s"]
                                                         / r["clips_per_s"])
    save()


def measure_pipeline(settings: BenchmarkSettings) -> dict[str, Any]:
  """Clips/s of the training input pipeline (data_pipeline.input_pipeline) on
  `settings.data` at the train step's batch, frames and crop, measured alone
  (data_pipeline.pipeline_benchmark's timing)."""
  from data_pipeline import input_pipeline, layouts, pipeline_benchmark
  from data_pipeline.errors import DataError
  extra = {"blur_dir": settings.blur_dir} if settings.layout == "gopro" else {}
  batches_timed, warmup = max(settings.repeats, 20), 3
  files.status(f"timing the input pipeline on {settings.data}: {warmup} warm-up + {batches_timed} "
           f"batches of {settings.batch}x{settings.frames}x{settings.height}x{settings.width}")
  try:
    sequences = layouts.find_sequences(settings.data, settings.layout, "train",
                                       clip_length=settings.frames, **extra)
    batches = input_pipeline.make_train_iterator(
        sequences, batch_size=settings.batch, clip_length=settings.frames,
        crop_size=settings.height, seed=settings.seed, cache_frames=settings.cache_frames)
    seconds = pipeline_benchmark.measure(batches, batches_timed, warmup)
  except DataError as e:
    raise BenchmarkError(f"--data: {e}") from None
  return dict(root=str(settings.data), layout=settings.layout, sequences=len(sequences),
              cache_frames=settings.cache_frames, batch_s=seconds,
              clips_per_s=settings.batch / seconds)
