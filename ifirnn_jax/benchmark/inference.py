"""--mode inference: the streaming step and a whole-clip call of each model, vs PyTorch."""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np

from data_pipeline.safe_io import files
from ifirnn_jax.benchmark.flops import spec_gflops
from ifirnn_jax.benchmark.probes import (interleave, matmul_gflops, peak_memory, summarize,
                                         time_calls, xla_flops, xla_memory)
from ifirnn_jax.benchmark.settings import BenchmarkSettings, make_model, torch_architecture, torch_device
from ifirnn_jax.model.network import IFIRNN


class JaxStream:
  """Our streaming step (frame [1, H, W, 3], h_{t-1} -> L_t, h_t), compiled ahead of time."""

  def __init__(self, model: IFIRNN, params: Any, frames: np.ndarray, device: jax.Device):
    self.params = params
    self.frames = [jax.device_put(f, device) for f in frames]  # cycled while streaming
    self.hidden = jax.device_put(model.initial_state(*frames.shape[2:4], batch=1), device)

    def stream_step(p, frame, hidden):
      # Unrolled iterations: XLA's cost analysis counts a rolled loop's body once.
      out, new_hidden, _ = model.apply_sequence(
          p, frame[:, None], hidden=hidden, unroll_iterations=True)
      return out[:, 0], new_hidden

    start = time.perf_counter()
    self.compiled = jax.jit(stream_step).lower(params, self.frames[0], self.hidden).compile()
    self.compile_s = time.perf_counter() - start
    self.calls = 0
    self.first_output: np.ndarray | None = None

  def step(self) -> float:
    start = time.perf_counter()
    out, self.hidden = self.compiled(self.params, self.frames[self.calls % len(self.frames)],
                                     self.hidden)
    jax.block_until_ready((out, self.hidden))
    seconds = time.perf_counter() - start
    if self.first_output is None:
      self.first_output = np.asarray(out, np.float32)
    self.calls += 1
    return seconds


class TorchStream:
  """The PyTorch reference streaming the same frames with the same weights (no_grad)."""

  def __init__(self, model: IFIRNN, weights_path: Path, frames: np.ndarray, device: str,
               threads: int):
    import torch
    from ifirnn_jax.model import torch_reference
    torch.set_num_threads(threads)
    self.torch, self.device = torch, device
    net = torch_reference.TorchIFIRNN(**torch_architecture(model))
    torch_reference.load_safetensors(net, weights_path)
    self.net = net.to(device).eval()
    self.frames = [torch.from_numpy(np.ascontiguousarray(f.transpose(0, 3, 1, 2))).to(device)
                   for f in frames]
    self.hidden = None
    self.calls = 0
    self.first_output: np.ndarray | None = None

  def step(self) -> float:
    start = time.perf_counter()
    with self.torch.inference_mode():
      out, self.hidden = self.net.step(self.frames[self.calls % len(self.frames)], self.hidden)
    if self.device == "cuda":
      self.torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    if self.first_output is None:
      self.first_output = out.float().cpu().numpy().transpose(0, 2, 3, 1)
    self.calls += 1
    return seconds


# ====================================================================== inference
def benchmark_inference_model(name: str, settings: BenchmarkSettings, device: jax.Device,
                              peak_matmul: float, work_dir: Path) -> dict[str, Any]:
  """Compiles, times, counts one model and (optionally) races it against PyTorch."""
  model = make_model(name, settings, settings.scan_unroll[0])
  h, w = settings.height, settings.width
  params = jax.device_put(model.init(jax.random.key(settings.seed)), device)
  rng = np.random.default_rng(settings.seed)
  frames = rng.uniform(size=(2, 1, h, w, 3)).astype(np.float32)
  runners: list[Any] = [JaxStream(model, params, frames, device)]
  if settings.torch:
    from ifirnn_jax.storage import weights
    weights_path = weights.save_weights(params, work_dir / f"{name}.safetensors", model=model)
    runners.append(TorchStream(model, weights_path, frames, torch_device(device.platform),
                               settings.torch_threads))
  times = interleave(runners, settings.warmup, settings.repeats)
  ours = runners[0]
  latency = summarize(times[0])
  spec = spec_gflops(model, h, w)
  flops = xla_flops(ours.compiled)
  result: dict[str, Any] = {
      "model": name, "params": int(sum(x.size for x in jax.tree.leaves(params))),
      "spec_gflop_per_frame": spec,
      "xla_gflop_per_frame": None if flops is None else flops / 1e9,
      "xla_over_spec": None if flops is None else flops / 1e9 / spec,
      "compile_s": {"stream_step": ours.compile_s},
      "latency_s": latency, "stream_fps": 1 / latency["mean"],
      "stream_fps_best": 1 / latency["min"],
      "achieved_gflops_per_s": spec / latency["mean"],
      "fraction_of_matmul_peak": spec / latency["mean"] / peak_matmul,
      "xla_gflops_per_s": None if flops is None else flops / 1e9 / latency["mean"],
      "xla_memory_bytes": {"stream_step": xla_memory(ours.compiled)},
      "clip_s": None, "batch_fps": None, "torch": None, "ours_over_torch_fps": None,
      "ours_over_torch_fps_best": None,
  }
  if settings.torch:
    theirs = runners[1]
    torch_latency = summarize(times[1])
    result["torch"] = {
        "latency_s": torch_latency, "stream_fps": 1 / torch_latency["mean"],
        "stream_fps_best": 1 / torch_latency["min"],
        "device": theirs.device, "dtype": "float32", "threads": theirs.torch.get_num_threads(),
        "rel_l2_error_first_frame": float(
            np.linalg.norm(ours.first_output - theirs.first_output)
            / np.linalg.norm(theirs.first_output))}
    result["ours_over_torch_fps"] = result["stream_fps"] / result["torch"]["stream_fps"]
    result["ours_over_torch_fps_best"] = (result["stream_fps_best"]
                                          / result["torch"]["stream_fps_best"])
    del runners[1:], theirs

  if settings.frames > 0 and settings.batch > 0:
    clip = jax.device_put(rng.uniform(size=(settings.batch, settings.frames, h, w, 3))
                          .astype(np.float32), device)
    start = time.perf_counter()
    sequence = jax.jit(lambda p, v: model.apply_sequence(
        p, v, unroll_iterations=True)[0]).lower(params, clip).compile()
    result["compile_s"]["sequence"] = time.perf_counter() - start
    result["xla_memory_bytes"]["sequence"] = xla_memory(sequence)
    run_clip = lambda: jax.block_until_ready(sequence(params, clip))  # noqa: E731
    time_calls(run_clip, settings.warmup)
    runs = max(1, math.ceil(settings.repeats / (settings.batch * settings.frames)))
    result["clip_s"] = summarize(time_calls(run_clip, runs))
    result["batch_fps"] = settings.batch * settings.frames / result["clip_s"]["mean"]

  result["peak_memory_bytes"], result["peak_memory_method"] = peak_memory(device)
  return result


def run_inference(settings: BenchmarkSettings, device: jax.Device, report: dict[str, Any],
                  save: Callable[[], None]) -> None:
  files.status(f"measuring the {settings.matmul_size}x{settings.matmul_size} matmul rate ...")
  rates = {"float32": matmul_gflops(device, "float32", settings.matmul_size)}
  if device.platform != "cpu" or settings.dtype == "bfloat16":
    rates["bfloat16"] = matmul_gflops(device, "bfloat16", settings.matmul_size)
  report["matmul_gflops_per_s"] = rates
  report["results"] = []
  # Work per model, to turn elapsed time into an ETA.
  work = [spec_gflops(make_model(n, settings), settings.height, settings.width)
          for n in settings.models]
  start = time.perf_counter()
  with tempfile.TemporaryDirectory(prefix="ifirnn_bench_") as tmp:
    for i, name in enumerate(settings.models):
      files.status(f"[{i + 1}/{len(settings.models)}] {name}: compiling and timing "
               f"({settings.warmup} warm-up + {settings.repeats} frames"
               f"{', taking turns with PyTorch' if settings.torch else ''}) ...")
      report["results"].append(
          benchmark_inference_model(name, settings, device, rates[settings.dtype], Path(tmp)))
      save()
      elapsed = time.perf_counter() - start
      left = files.seconds_left(elapsed, sum(work[:i + 1]), sum(work))
      files.status(f"[{i + 1}/{len(settings.models)}] {name} done; {files.hms(elapsed)} "
               f"elapsed, about {files.hms(left)} left")
