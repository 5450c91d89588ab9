"""Speed, FLOPs and memory of IFI-RNN: `python -m ifirnn_jax.benchmark [--mode inference|train]`.

Inference (default; docs/benchmarks.md): for each model, the streaming step (one frame
and h_{t-1} -> L_t, h_t) and a whole-clip call (`apply_sequence`, F_B / F_L batched over
all frames) are compiled ahead of time (compile time reported apart), then timed:
per-frame latency averaged over `--repeats` frames after `--warmup`, and clip throughput
in frames/s. FLOPs are reported twice: the spec's count (`spec_gflops`, multiply-adds of
the layer table, independent of XLA) and XLA's cost analysis of the compiled step (which
counts the layers as they are actually executed, see `spec_gflops`). Achieved GFLOP/s use
the spec's count (an effective rate: a fast algorithm such as Winograd, which does fewer
multiplies than the direct convolution, can exceed the matmul rate; `xla_gflops_per_s` is
the rate of the arithmetic actually done) and are compared with a measured float32 (and,
on GPU, bfloat16) matmul rate. On CPU the PyTorch reference (`torch_reference.TorchIFIRNN`, same weights, no_grad,
streaming) runs in the same process for an ours/torch ratio.

Train: the training step of `train.train_step` (Adam of `train.create_optimizer`, content
loss) for each `--scan-unroll` value, and `torch_reference.make_train_step`, from the same
initial weights and batch; steps/s, ratios, and peak memory, each variant in its own child
process by default (`--isolate`) so that one framework's peak does not hide the other's.
On CPU our step runs, as training runs it, over one XLA CPU device per core that
divides the batch, each single-threaded (`--cpu-devices`, ifirnn_jax/cpu_devices.py);
with `--processes N` as N processes pinned to one core each, data parallel over
`jax.distributed` on loopback, as `launch/cpu_processes.sh` trains.
With `--data DATASET` it also times the training input pipeline alone at the same batch,
frames and crop, and prints its clips/s next to each step's (the pipeline
must not be the bottleneck).

Timings on shared machines are noisy: compare ratios from one run, not absolute numbers
across runs. Results go to `--out` (JSON, written atomically, after every model).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ifirnn_jax import cpu_devices, default_config, huge_pages
from ifirnn_jax.cpu_policy import CONV_IMPLS
from ifirnn_jax.models import IFIRNN

TABLE1_MODELS = ("C1H1", "C1H2", "C1H3", "C1H4", "C2H1", "C2H2", "C2H3", "C2H4")
SPEC_WIDTHS = (20, 40, 60, 20, 6)         # n1, n2, n3, nh, num_resblocks (docs/architecture.md)
SMALL_TRAIN_WIDTHS = (16, 32, 48, 16, 4)  # docs/benchmarks.md's small model

# Per-mode defaults of the options left as None on the command line.
MODE_DEFAULTS = {
    "inference": dict(models=",".join(TABLE1_MODELS), widths=SPEC_WIDTHS, height=540,
                      width=960, batch=1, frames=4, repeats=10, scan_unroll="1"),
    "train": dict(models="C2H2", widths=SMALL_TRAIN_WIDTHS, height=64, width=64, batch=4,
                  frames=6, repeats=10, scan_unroll="full,1"),
}


class BenchmarkError(Exception):
  """Options that cannot be benchmarked (unknown model, bad widths, missing device...)."""


# ====================================================================== FLOPs of the spec
def _taps(size_in: int, kernel: int, stride: int, padding: int, transposed: bool,
          count_padding: bool) -> int:
  """Kernel taps summed over the positions of one spatial dimension of a convolution.

  A conv counts, per output position, the taps it reads; a transposed conv (PyTorch
  semantics) counts, per input position, the taps it writes. With count_padding False,
  only taps that touch a real (non-padding) pixel count, as XLA's cost analysis does.
  """
  if transposed:
    size_out = (size_in - 1) * stride - 2 * padding + kernel
    positions, limit = range(size_in), size_out
  else:
    size_out = (size_in + 2 * padding - kernel) // stride + 1
    positions, limit = range(size_out), size_in
  if count_padding:
    return len(positions) * kernel
  return sum(1 for o in positions for i in range(kernel) if 0 <= o * stride + i - padding < limit)


def _conv_macs(h: int, w: int, kernel: int, c_in: int, c_out: int, stride: int = 1,
               transposed: bool = False, count_padding: bool = True) -> int:
  """Multiply-adds of a conv on an h x w input (padding kernel // 2; transposed: 1)."""
  padding = 1 if transposed else kernel // 2
  taps = (_taps(h, kernel, stride, padding, transposed, count_padding)
          * _taps(w, kernel, stride, padding, transposed, count_padding))
  return taps * c_in * c_out


def spec_forward_macs(model: IFIRNN, height: int, width: int,
                      count_padding: bool = True) -> dict[str, int]:
  """Multiply-adds per frame of each part of the spec's layer table, at the padded size.

  Counts every tap of every kernel (zero padding included unless `count_padding` is
  False; biases, ReLUs and additions excluded), with a transposed conv counted as PyTorch
  runs it: each input pixel times kernel^2 * c_in * c_out. F_B runs once per cell, F_L
  once, and F_R + F_h run N passes (C1HN) or N + 1 (C2HN). The gate is not counted
  (removed at inference).
  """
  h, w = height + (-height) % 4, width + (-width) % 4
  h2, w2, hq, wq = h // 2, w // 2, h // 4, w // 4
  fused = model.n3 + model.nh
  conv = lambda *a, **k: _conv_macs(*a, **k, count_padding=count_padding)  # noqa: E731
  blur_features = (conv(h, w, 5, 3, model.n1) + conv(h, w, 5, model.n1, model.n2, stride=2)
                   + conv(h2, w2, 5, model.n2, model.n3, stride=2))
  fusion = model.num_resblocks * 2 * conv(hq, wq, 3, fused, fused)
  hidden = conv(hq, wq, 3, fused, model.nh) + 3 * conv(hq, wq, 3, model.nh, model.nh)
  latent = (conv(hq, wq, 4, fused, model.n2, stride=2, transposed=True)
            + conv(h2, w2, 4, model.n2, model.n1, stride=2, transposed=True)
            + conv(h, w, 5, model.n1, 3))
  passes = model.iterations + (1 if model.cells == 2 else 0)
  return {"F_B": model.cells * blur_features, "F_R": passes * fusion, "F_h": passes * hidden,
          "F_L": latent}


def spec_gflops(model: IFIRNN, height: int, width: int, count_padding: bool = True) -> float:
  """Forward GFLOP per frame (multiply-add = 2) from the spec's layer table.

  At the defaults and 960x540 this is docs/architecture.md's table (C2H3: 215.1). XLA's cost
  analysis differs: it skips taps that fall on the zero padding (`count_padding=False`
  counts that way), counts bias adds and activations, and counts the layers as executed:
  when the stride-2 convs run as space-to-depth + a 3x3 conv and the transposed convs as
  a 3x3 conv + depth-to-space, their kernels hold structural zero taps that are
  multiplied all the same (+44% on a strided conv, +125% on a transposed one).
  """
  return 2 * sum(spec_forward_macs(model, height, width, count_padding).values()) / 1e9


# ====================================================================== small measurements
def peak_memory(device: jax.Device) -> tuple[int | None, str]:
  """(bytes, method): device peak where the backend reports it, else the process peak RSS."""
  if device.platform != "cpu":
    stats = device.memory_stats() or {}
    if "peak_bytes_in_use" in stats:
      return int(stats["peak_bytes_in_use"]), "device peak_bytes_in_use (process lifetime)"
    return None, "unavailable on this backend"
  return peak_rss_bytes(), "process peak RSS (process lifetime)"


def peak_rss_bytes() -> int:
  scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is KiB on Linux
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def current_rss_bytes() -> int:
  try:
    with open("/proc/self/statm") as f:
      return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
  except OSError:
    return peak_rss_bytes()


def matmul_gflops(device: jax.Device, dtype: str, size: int, trials: int = 3,
                  calls: int = 4) -> float:
  """Best measured rate (GFLOP/s) of a jitted size x size matmul in `dtype` on `device`.

  Default matmul precision (on GPUs that lets float32 use TF32, as the model's convs do).
  """
  rng = np.random.default_rng(0)
  a, b = (jax.device_put(jnp.asarray(rng.standard_normal((size, size)), dtype), device)
          for _ in range(2))
  matmul = jax.jit(jnp.matmul).lower(a, b).compile()
  jax.block_until_ready(matmul(a, b))
  best = math.inf
  for _ in range(trials):
    start = time.perf_counter()
    out = [matmul(a, b) for _ in range(calls)]
    jax.block_until_ready(out)
    best = min(best, (time.perf_counter() - start) / calls)
  return 2 * size**3 / best / 1e9


def time_calls(fn: Callable[[], Any], runs: int) -> list[float]:
  """Wall-clock seconds of `runs` calls of fn (fn must block until its result is ready)."""
  times = []
  for _ in range(runs):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return times


def summarize(times: Sequence[float]) -> dict[str, float]:
  return {"mean": statistics.fmean(times), "median": statistics.median(times),
          "min": min(times), "max": max(times),
          "std": statistics.stdev(times) if len(times) > 1 else 0.0, "runs": len(times)}


def xla_flops(compiled: Any) -> float | None:
  """FLOPs of a compiled computation from XLA's cost analysis (None if not reported).

  jax 0.10 returns a dict; older versions a list with one dict per device program.
  """
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0] if analysis else {}
  flops = (analysis or {}).get("flops")
  return float(flops) if flops is not None and flops >= 0 else None


def xla_memory(compiled: Any) -> dict[str, int] | None:
  """Argument / output / temporary bytes of a compiled executable (XLA's own plan)."""
  try:
    stats = compiled.memory_analysis()
  except Exception:  # not every backend implements it
    return None
  if stats is None:
    return None
  return {"argument": int(stats.argument_size_in_bytes),
          "output": int(stats.output_size_in_bytes),
          "temp": int(stats.temp_size_in_bytes)}


def write_json_atomic(path: Path, data: Any) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
  try:
    with os.fdopen(fd, "w") as f:
      json.dump(data, f, indent=2)
      f.write("\n")
    os.replace(tmp, path)
  except BaseException:
    Path(tmp).unlink(missing_ok=True)
    raise


def format_duration(seconds: float) -> str:
  seconds = int(round(seconds))
  if seconds < 60:
    return f"{seconds}s"
  if seconds < 3600:
    return f"{seconds // 60}m{seconds % 60:02d}s"
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def progress(message: str) -> None:
  print(message, file=sys.stderr, flush=True)


# ====================================================================== settings
@dataclasses.dataclass(frozen=True)
class Settings:
  """Everything a run depends on (the parsed command line)."""

  mode: str
  models: tuple[str, ...]
  widths: tuple[int, int, int, int, int]
  height: int
  width: int
  batch: int
  frames: int
  repeats: int
  warmup: int
  dtype: str
  conv_impl: str
  device: str
  torch: bool
  torch_threads: int
  scan_unroll: tuple[int | bool, ...]
  isolate: bool
  matmul_size: int
  seed: int
  out: str
  data: str | None = None        # train: a dataset whose input pipeline is timed as well
  remat: bool = False            # IFIRNN.remat: recompute each frame in the backward pass
  layout: str = "gopro"
  blur_dir: str = "blur_gamma"
  cache_frames: bool = False
  processes: int = 1             # train, CPU: our step as this many processes, one core each
  cpu_devices: int = 1           # train, CPU, one process: our step over this many devices


def make_model(name: str, settings: Settings, scan_unroll: int | bool = 1) -> IFIRNN:
  """The IFIRNN called `name` (C1HN / C2HN, -reg allowed) at the settings' widths and dtype."""
  try:
    fields = default_config.model_fields(name)
  except default_config.ConfigError as e:
    raise BenchmarkError(str(e).replace("config.model.name", "--models")) from None
  n1, n2, n3, nh, nb = settings.widths
  return IFIRNN(**fields, n1=n1, n2=n2, n3=n3, nh=nh, num_resblocks=nb,
                compute_dtype=settings.dtype, conv_impl=settings.conv_impl,
                scan_unroll=scan_unroll, remat=settings.remat)


def torch_architecture(model: IFIRNN) -> dict[str, Any]:
  return dict(cells=model.cells, iterations=model.iterations, n1=model.n1, n2=model.n2,
              n3=model.n3, nh=model.nh, num_resblocks=model.num_resblocks,
              gated=model.gated, gate_hidden=model.gate_hidden,
              residual_output=model.residual_output)


def select_device(platform: str) -> jax.Device:
  try:
    return jax.devices(platform)[0]
  except RuntimeError as e:
    raise BenchmarkError(f"--device {platform}: no such JAX device here ({e})") from None


def environment(device: jax.Device) -> dict[str, Any]:
  env = {"jax": jax.__version__, "backend": device.platform,
         "device_kind": device.device_kind, "cpu_count": os.cpu_count(),
         "python": sys.version.split()[0],
         # 2 MiB pages change CPU timings (huge_pages.py); both frameworks run under them.
         "glibc_tunables": os.environ.get("GLIBC_TUNABLES"),
         # None (JAX's default) lets GPUs run float32 convs and matmuls as TF32.
         "matmul_precision": jax.config.jax_default_matmul_precision}
  try:
    import torch
    env["torch"] = torch.__version__
    if device.platform != "cpu" and torch.cuda.is_available():
      env["torch_cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32
  except ImportError:
    env["torch"] = None
  return env


def torch_available() -> bool:
  try:
    import torch  # noqa: F401
    return True
  except ImportError:
    return False


def torch_device(platform: str) -> str:
  """Where the PyTorch reference runs: the CPU, or CUDA when JAX runs on a GPU."""
  if platform == "cpu":
    return "cpu"
  import torch
  if not torch.cuda.is_available():
    raise BenchmarkError(f"--torch on --device {platform}: this PyTorch has no CUDA; "
                         "use --no-torch")
  return "cuda"


# ====================================================================== timed runners
# Runners take turns in blocks of BLOCK timed calls, each block after one untimed call:
# on a 2-core CPU, taking turns call by call slowed the call that followed another
# runner's, most likely because that runner's worker threads (XLA's, PyTorch's OpenMP
# ones) still spin after its call returns (docs/benchmarks.md has the measurement).
BLOCK = 5


def interleave(runners: Sequence[Any], warmup: int, repeats: int,
               block: int = BLOCK) -> list[list[float]]:
  """Seconds per call of each runner's `step()`, the runners taking turns.

  Taking turns spreads the load of a shared machine over every runner alike, so their
  ratio stays meaningful even when the absolute times drift. Each turn is one untimed
  call, then up to `block` timed ones (BLOCK), until each runner has `repeats`.
  """
  for _ in range(warmup):
    for runner in runners:
      runner.step()
  times: list[list[float]] = [[] for _ in runners]
  while len(times[0]) < repeats:
    count = min(block, repeats - len(times[0]))
    for runner, record in zip(runners, times):
      runner.step()  # untimed: lets the previous runner's threads go idle
      record.extend(runner.step() for _ in range(count))
  return times


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
    from ifirnn_jax import torch_reference
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
def benchmark_inference_model(name: str, settings: Settings, device: jax.Device,
                              peak_matmul: float, work_dir: Path) -> dict[str, Any]:
  """Compiles, times, counts one model and (optionally) races it against PyTorch."""
  model = make_model(name, settings, settings.scan_unroll[0])
  h, w = settings.height, settings.width
  params = jax.device_put(model.init(jax.random.key(settings.seed)), device)
  rng = np.random.default_rng(settings.seed)
  frames = rng.uniform(size=(2, 1, h, w, 3)).astype(np.float32)
  runners: list[Any] = [JaxStream(model, params, frames, device)]
  if settings.torch:
    from ifirnn_jax import weights
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


def run_inference(settings: Settings, device: jax.Device, report: dict[str, Any],
                  save: Callable[[], None]) -> None:
  progress(f"measuring the {settings.matmul_size}x{settings.matmul_size} matmul rate ...")
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
      progress(f"[{i + 1}/{len(settings.models)}] {name}: compiling and timing "
               f"({settings.warmup} warm-up + {settings.repeats} frames"
               f"{', taking turns with PyTorch' if settings.torch else ''}) ...")
      report["results"].append(
          benchmark_inference_model(name, settings, device, rates[settings.dtype], Path(tmp)))
      save()
      elapsed = time.perf_counter() - start
      left = elapsed / sum(work[:i + 1]) * sum(work[i + 1:])
      progress(f"[{i + 1}/{len(settings.models)}] {name} done; {format_duration(elapsed)} "
               f"elapsed, about {format_duration(left)} left")


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


# ====================================================================== train
def _unroll_label(unroll: int | bool) -> str:
  return "full" if unroll is True else str(unroll)


def _variant_name(job: dict[str, Any]) -> str:
  if job["framework"] == "torch":
    return "torch"
  name = f"jax scan_unroll={_unroll_label(job['scan_unroll'])}"
  processes, devices = job.get("num_processes", 1), job.get("cpu_devices", 1)
  if processes > 1:
    return f"{name}, {processes} processes x 1 core"
  return name if devices == 1 else f"{name}, {devices} CPU devices x 1 core"


class JaxTrainStep:
  """`train.train_step` (Adam of `train.create_optimizer`, content loss), compiled AOT.

  Over one device, over several CPU devices of this process (job 'cpu_devices' > 1),
  or (job 'num_processes' > 1) data parallel over the processes of a `jax.distributed`
  run, each holding its slice of the batch, as training runs them.
  """

  def __init__(self, job: dict[str, Any], settings: Settings, blur: np.ndarray,
               sharp: np.ndarray):
    import functools
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from ifirnn_jax import train, weights
    device = select_device(settings.device)
    self.device = device
    if job.get("num_processes", 1) > 1:
      devices = jax.devices()
    elif job.get("cpu_devices", 1) > 1:
      devices = jax.devices("cpu")[:job["cpu_devices"]]
      if len(devices) < job["cpu_devices"]:
        raise BenchmarkError(f"--cpu-devices {job['cpu_devices']}: JAX has {len(devices)} "
                             f"CPU devices (XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r})")
    else:
      devices = [device]
    mesh = Mesh(np.array(devices), ("data",))
    replicated, data_sharding = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
    model = make_model(job["model"], settings, job["scan_unroll"])
    self.rolled = job["scan_unroll"] is not True and job["scan_unroll"] < settings.frames
    config = default_config.base_config()
    config.model.name = job["model"]
    config.lr_halve_every_steps = 10**9   # a constant lr (1e-4) over the benchmark
    tx = train.create_optimizer(config)
    lr_fn = train.create_learning_rate_fn(config)
    params = weights.load_weights(job["weights_path"], model)
    self.state = jax.device_put(train.TrainState(
        step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params)), replicated)
    per_process = len(blur) // jax.process_count()  # this process's clips
    rows = slice(per_process * jax.process_index(), per_process * (jax.process_index() + 1))
    self.batch = {k: jax.make_array_from_process_local_data(data_sharding, v[rows], v.shape)
                  for k, v in (("blur", blur), ("sharp", sharp))}
    self.seed_key = jax.random.key(settings.seed)
    step_fn = jax.jit(functools.partial(train.train_step, model=model, tx=tx, lr_fn=lr_fn,
                                        reg_lambda=config.reg_lambda, reg_tau=config.reg_tau,
                                        mesh=mesh),
                      donate_argnums=0,
                      compiler_options=cpu_devices.step_compiler_options(devices))
    start = time.perf_counter()
    self.compiled = step_fn.lower(self.state, self.batch, self.seed_key).compile()
    self.compile_s = time.perf_counter() - start
    self.first_loss: float | None = None

  def step(self) -> float:
    start = time.perf_counter()
    self.state, metrics = self.compiled(self.state, self.batch, self.seed_key)
    loss = float(metrics["loss"])
    jax.block_until_ready(self.state)
    seconds = time.perf_counter() - start
    if self.first_loss is None:
      self.first_loss = loss
    return seconds

  def summary(self) -> dict[str, Any]:
    flops = xla_flops(self.compiled)
    result = {"compile_s": self.compile_s, "first_loss": self.first_loss,
              "xla_gflop_per_step": None if flops is None else flops / 1e9,
              "xla_memory_bytes": xla_memory(self.compiled)}
    if self.rolled:
      result["xla_gflop_note"] = "XLA counts a rolled lax.scan body once, not once per frame"
    if self.device.platform != "cpu":
      result["peak_memory_bytes"], result["peak_memory_method"] = peak_memory(self.device)
    return result


class TorchTrainStep:
  """`torch_reference.make_train_step` (Adam, content loss) on the same weights and batch."""

  def __init__(self, job: dict[str, Any], settings: Settings, blur: np.ndarray,
               sharp: np.ndarray):
    import torch
    from ifirnn_jax import torch_reference
    torch.set_num_threads(settings.torch_threads)
    self.torch, self.device = torch, torch_device(settings.device)
    net = torch_reference.TorchIFIRNN(**torch_architecture(make_model(job["model"], settings)))
    torch_reference.load_safetensors(net, job["weights_path"])
    self.train_step = torch_reference.make_train_step(net.to(self.device), learning_rate=1e-4)
    to_nchw = lambda x: torch.from_numpy(np.ascontiguousarray(x.transpose(0, 1, 4, 2, 3)))  # noqa: E731
    self.blur, self.sharp = to_nchw(blur).to(self.device), to_nchw(sharp).to(self.device)
    self.first_loss: float | None = None

  def step(self) -> float:
    start = time.perf_counter()
    loss = self.train_step(self.blur, self.sharp)  # float(loss): waits for the step
    seconds = time.perf_counter() - start
    if self.first_loss is None:
      self.first_loss = loss
    return seconds

  def summary(self) -> dict[str, Any]:
    result = {"compile_s": 0.0, "first_loss": self.first_loss,
              "threads": self.torch.get_num_threads(), "device": self.device}
    if self.device == "cuda":
      result["peak_memory_bytes"] = int(self.torch.cuda.max_memory_allocated())
      result["peak_memory_method"] = "torch.cuda.max_memory_allocated"
    return result


def open_train_variant(job: dict[str, Any]) -> Any:
  """Builds (and compiles) one variant: `step() -> seconds`, `summary() -> dict`.

  job: framework ('jax' | 'torch'), scan_unroll, model, settings (a Settings as a dict),
  weights_path (the shared initial weights), batch_path (.npz with 'blur' and 'sharp').
  """
  settings = Settings(**job["settings"])
  data = np.load(job["batch_path"])
  cls = TorchTrainStep if job["framework"] == "torch" else JaxTrainStep
  return cls(job, settings, data["blur"], data["sharp"])


def _import_framework(framework: str) -> None:
  if framework == "torch":
    import torch  # noqa: F401
    from ifirnn_jax import torch_reference  # noqa: F401
  else:
    from ifirnn_jax import train  # noqa: F401


def _serve_variant(connection: Any, job: dict[str, Any]) -> None:
  """Child process: one variant, stepping on request, then reporting its own memory."""
  import traceback
  os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # GPUs: share the device
  try:
    if job.get("num_processes", 1) > 1:  # before JAX starts its backend and thread pool
      from ifirnn_jax import cli
      os.sched_setaffinity(0, {job["core"]})
      cli.initialize_distributed(job["coordinator_address"], job["num_processes"],
                                 job["process_id"])
    if job.get("cpu_devices", 1) > 1:  # also before JAX starts its backend
      cpu_devices.request_cpu_devices(job["cpu_devices"])
    _import_framework(job["framework"])
    baseline = current_rss_bytes()
    variant = open_train_variant(job)
    connection.send(("ready", None))
    while connection.recv() == "step":
      connection.send(("ok", variant.step()))
    summary = variant.summary()
    if "peak_memory_bytes" not in summary:
      summary.update(peak_memory_bytes=peak_rss_bytes(),
                     rss_growth_bytes=peak_rss_bytes() - baseline,
                     peak_memory_method="peak RSS of its own child process")
    connection.send(("ok", summary))
  except EOFError:  # the parent closed the connection: nothing left to do
    pass
  except BaseException:  # reported to the parent, which raises it
    try:
      connection.send(("error", traceback.format_exc()))
    except OSError:
      pass
  finally:
    connection.close()


class ChildVariant:
  """A variant living in its own process (so its peak memory is its own)."""

  def __init__(self, job: dict[str, Any], wait: bool = True):
    context = multiprocessing.get_context("spawn")
    self.name = _variant_name(job)
    self.connection, child_end = context.Pipe()
    self.process = context.Process(target=_serve_variant, args=(child_end, job), daemon=True)
    self.process.start()
    child_end.close()
    if wait:
      self._receive()  # set up and compiled

  def _receive(self) -> Any:
    try:
      status, value = self.connection.recv()
    except EOFError:
      raise RuntimeError(f"{self.name}: its process ended unexpectedly (exit code "
                         f"{self.process.exitcode}; out of memory?)") from None
    if status == "error":
      raise RuntimeError(f"{self.name} failed in its process:\n{value}")
    return value

  def step(self) -> float:
    self.connection.send("step")
    return self._receive()

  def summary(self) -> dict[str, Any]:
    self.connection.send("summary")
    result = self._receive()
    self.close()
    return result

  def close(self) -> None:
    self.connection.close()  # a child still waiting for a command ends at once
    self.process.join(timeout=30)
    if self.process.is_alive():
      self.process.terminate()
      self.process.join()


class ProcessGroupVariant:
  """A JAX variant run by `num_processes` child processes, each pinned to its own core,
  training together through `jax.distributed` on loopback (gloo): each step is timed
  from the first process's start to the last one's end."""

  def __init__(self, job: dict[str, Any]):
    import socket
    self.name = _variant_name(job)
    cores = sorted(os.sched_getaffinity(0))
    with socket.socket() as s:
      s.bind(("127.0.0.1", 0))
      address = f"127.0.0.1:{s.getsockname()[1]}"
    self.members: list[ChildVariant] = []
    try:
      for i in range(job["num_processes"]):  # all started before any is waited for
        self.members.append(ChildVariant(dict(job, process_id=i, core=cores[i],
                                              coordinator_address=address), wait=False))
      for member in self.members:
        member._receive()  # set up and compiled
    except BaseException:
      self.close()
      raise

  def step(self) -> float:
    start = time.perf_counter()
    for member in self.members:
      member.connection.send("step")
    for member in self.members:
      member._receive()
    return time.perf_counter() - start

  def summary(self) -> dict[str, Any]:
    for member in self.members:
      member.connection.send("summary")
    summaries = [member._receive() for member in self.members]
    self.close()
    result = dict(summaries[0])
    for key in ("peak_memory_bytes", "rss_growth_bytes"):
      result[key] = sum(s[key] for s in summaries)
    result["peak_memory_method"] = (f"sum of the peak RSS of its {len(summaries)} processes")
    return result

  def close(self) -> None:
    for member in self.members:
      member.close()


class InProcessVariant:
  """A variant in this process (faster to start; memory figures are not its own)."""

  def __init__(self, job: dict[str, Any]):
    _import_framework(job["framework"])
    self.baseline = current_rss_bytes()
    self.variant = open_train_variant(job)
    self.step = self.variant.step

  def summary(self) -> dict[str, Any]:
    summary = self.variant.summary()
    if "peak_memory_bytes" not in summary:
      summary.update(peak_memory_bytes=peak_rss_bytes(),
                     rss_growth_bytes=peak_rss_bytes() - self.baseline,
                     peak_memory_method="process peak RSS (shared process: not isolated)")
    return summary

  def close(self) -> None:
    pass


def run_train(settings: Settings, device: jax.Device, report: dict[str, Any],
              save: Callable[[], None]) -> None:
  from ifirnn_jax import weights
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
        progress(f"[{i + 1}/{len(jobs)}] {name} train step, {_variant_name(job)}: "
                 f"setting up and compiling ...")
        job.update(model=name, settings=dataclasses.asdict(settings),
                   weights_path=str(weights_path), batch_path=str(batch_path))
        variants.append(ProcessGroupVariant(job) if job.get("num_processes", 1) > 1
                        else open_variant(job))
      progress(f"timing: {settings.warmup} warm-up + {settings.repeats} steps of "
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
        variant=_variant_name(job), framework=job["framework"],
        scan_unroll=None if job["scan_unroll"] is None else _unroll_label(job["scan_unroll"]),
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


def measure_pipeline(settings: Settings) -> dict[str, Any]:
  """Clips/s of the training input pipeline (data_pipeline.input_pipeline) on
  `settings.data` at the train step's batch, frames and crop, measured alone."""
  from data_pipeline import input_pipeline, layouts
  from data_pipeline.errors import DataError
  extra = {"blur_dir": settings.blur_dir} if settings.layout == "gopro" else {}
  batches_timed = max(settings.repeats, 20)
  progress(f"timing the input pipeline on {settings.data}: 3 warm-up + {batches_timed} "
           f"batches of {settings.batch}x{settings.frames}x{settings.height}x{settings.width}")
  try:
    sequences = layouts.find_sequences(settings.data, settings.layout, "train",
                                       clip_length=settings.frames, **extra)
    batches = input_pipeline.make_train_iterator(
        sequences, batch_size=settings.batch, clip_length=settings.frames,
        crop_size=settings.height, seed=settings.seed, cache_frames=settings.cache_frames)
    for _ in range(3):
      next(batches)
    start = time.perf_counter()
    for _ in range(batches_timed):
      next(batches)
    seconds = (time.perf_counter() - start) / batches_timed
  except DataError as e:
    raise BenchmarkError(f"--data: {e}") from None
  return dict(root=str(settings.data), layout=settings.layout, sequences=len(sequences),
              cache_frames=settings.cache_frames, batch_s=seconds,
              clips_per_s=settings.batch / seconds)


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
    lines = [f"input pipeline on {pipe['root']} ({pipe['sequences']} sequences, cache_frames "
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


# ====================================================================== memory
# --mode memory: peak RSS of `python -m ifirnn_jax.deblur` on synthetic videos of these
# lengths, each in a fresh process: streaming must keep it independent of the length.
MEMORY_LENGTHS = (15, 150, 1500)
MEMORY_DEFAULTS = dict(models="C1H1", widths=(4, 6, 8, 4, 1), height=720, width=1280)

# Runs argv[2:], then writes its peak RSS (KiB) to argv[1]. A small wrapper reads the
# peak from its RUSAGE_CHILDREN: the child's own ru_maxrss would also count the
# memory of the process it was spawned from (shared until exec), here a JAX process.
_PEAK_RSS_WRAPPER = """
import resource, subprocess, sys
status = subprocess.call(sys.argv[2:])
with open(sys.argv[1], "w") as f:
  f.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(status)
"""


def synthetic_frames(count: int, height: int, width: int) -> Any:
  """uint8 [H, W, 3] frames of moving gradients, one at a time."""
  y, x = np.mgrid[0:height, 0:width]
  for t in range(count):
    yield np.stack([(3 * x + 5 * t) % 256, (2 * y + 3 * t) % 256, (x + y + 7 * t) % 256],
                   axis=-1).astype(np.uint8)


def deblur_peak_rss(args: list[str], log: Path) -> tuple[int, float, float]:
  """Runs the deblur CLI in a fresh process: (exit status, peak RSS in MiB, seconds)."""
  peak = log.with_suffix(".peak")
  start = time.perf_counter()
  with open(log, "wb") as output:
    status = subprocess.call(
        [sys.executable, "-c", _PEAK_RSS_WRAPPER, str(peak),
         sys.executable, "-m", "ifirnn_jax.deblur", *args],
        cwd=Path(__file__).resolve().parents[1], stdout=output, stderr=subprocess.STDOUT)
  seconds = time.perf_counter() - start
  rss = int(peak.read_text()) / 1024 if peak.exists() else float("nan")  # KiB on Linux
  return status, rss, seconds


def run_memory(args: argparse.Namespace) -> dict[str, Any]:
  """Peak RSS of deblurring MEMORY_LENGTHS-frame videos (video in, H.264 video out)."""
  from data_pipeline.video import FrameSink  # pylint: disable=g-import-not-at-top
  from ifirnn_jax import weights  # pylint: disable=g-import-not-at-top
  try:
    lengths = tuple(int(x) for x in args.lengths.split(","))
  except ValueError:
    lengths = ()
  if not lengths or min(lengths) < 1:
    raise BenchmarkError(f"--lengths must be integers >= 1, comma-separated, got "
                         f"{args.lengths!r}")
  height = MEMORY_DEFAULTS["height"] if args.height is None else args.height
  width = MEMORY_DEFAULTS["width"] if args.width is None else args.width
  if height < 4 or width < 4:
    raise BenchmarkError(f"--height and --width must be >= 4, got {height}x{width}")
  name = args.models or MEMORY_DEFAULTS["models"]
  widths = _parse_widths(args.widths or MEMORY_DEFAULTS["widths"])
  try:
    fields = default_config.model_fields(name)
  except default_config.ConfigError as e:
    raise BenchmarkError(str(e).replace("config.model.name", "--models")) from None
  model = IFIRNN(**fields, n1=widths[0], n2=widths[1], n3=widths[2], nh=widths[3],
                 num_resblocks=widths[4])
  report: dict[str, Any] = {
      "mode": "memory", "model": model.name, "widths": list(widths), "height": height,
      "width": width, "cpu_count": os.cpu_count(), "jax": jax.__version__, "results": []}
  with tempfile.TemporaryDirectory(prefix="ifirnn_memory_") as folder:
    folder = Path(folder)
    weight_file = weights.save_weights(model.init(jax.random.key(args.seed)),
                                       folder / "model.safetensors", model=model)
    for count in lengths:
      video = folder / f"in_{count}.mp4"
      with FrameSink(video, fps=30) as sink:
        for frame in synthetic_frames(count, height, width):
          sink.write(frame)
      log = folder / f"log_{count}.txt"
      status, rss, seconds = deblur_peak_rss(
          ["--input", str(video), "--output", str(folder / f"out_{count}.mp4"),
           "--weights", str(weight_file)], log)
      if status != 0:
        raise BenchmarkError(f"deblur of the {count}-frame video failed (exit {status}): "
                             f"{log.read_text()[-2000:]}")
      report["results"].append(dict(frames=count, peak_rss_mib=round(rss, 1),
                                    seconds=round(seconds, 1)))
      video.unlink()
      (folder / f"out_{count}.mp4").unlink()
      write_json_atomic(Path(args.out), report)
  return report


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


# ====================================================================== command line
def _parse_widths(text: str | tuple) -> tuple[int, int, int, int, int]:
  if isinstance(text, tuple):
    return text
  try:
    widths = tuple(int(x) for x in text.split(","))
  except ValueError:
    widths = ()
  if len(widths) != 5 or min(widths[:4]) < 1 or widths[4] < 0:
    raise BenchmarkError(f"--widths must be five integers n1,n2,n3,nh,nb (>= 1; nb >= 0), "
                         f"got {text!r}")
  return widths  # type: ignore[return-value]


def _parse_unroll(text: str) -> tuple[int | bool, ...]:
  values = []
  for item in text.split(","):
    item = item.strip().lower()
    if item in ("full", "true"):
      values.append(True)
    elif item.isdigit() and int(item) >= 1:
      values.append(int(item))
    else:
      raise BenchmarkError(f"--scan-unroll takes 'full' or integers >= 1, got {text!r}")
  return tuple(values)


class _DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
  """Appends "(default: X)" only where the help does not say it and X is not None."""

  def _get_help_string(self, action: argparse.Action) -> str:
    text = action.help or ""
    if action.default is None or "default" in text:
      return text
    return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      prog="python -m ifirnn_jax.benchmark", description=__doc__.split("\n\n")[0],
      formatter_class=_DefaultsHelpFormatter)
  p.add_argument("--mode", choices=("inference", "train", "memory"), default="inference",
                 help="memory: peak RSS of the deblur command on synthetic videos of "
                 "--lengths frames (default 1280x720, C1H1 at widths 4,6,8,4,1)")
  p.add_argument("--lengths", default=",".join(map(str, MEMORY_LENGTHS)),
                 help="memory: video lengths in frames, comma-separated")
  p.add_argument("--models", help="comma-separated C1HN/C2HN[-reg] names (inference default: "
                 "the 8 of Table 1; train default: C2H2)")
  p.add_argument("--widths", help="n1,n2,n3,nh,num_resblocks (inference default 20,40,60,20,6; "
                 "train default 16,32,48,16,4)")
  p.add_argument("--height", type=int, help="frame height, multiple of 4 (default 540; train 64)")
  p.add_argument("--width", type=int, help="frame width, multiple of 4 (default 960; train 64)")
  p.add_argument("--batch", type=int, help="clips per batch (default 1; train 4)")
  p.add_argument("--frames", type=int, help="frames per clip (default 4; train 6); "
                 "inference: 0 skips the clip-throughput measurement")
  p.add_argument("--repeats", type=int, help="timed frames (inference; the clip runs "
                 "ceil(repeats / (batch * frames)) times) or timed steps (train); default 10")
  p.add_argument("--warmup", type=int, default=1, help="untimed calls after compiling")
  p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                 help="compute dtype of our model (parameters stay float32; PyTorch float32)")
  p.add_argument("--remat", action="store_true",
                 help="train: recompute each frame in the backward pass (IFIRNN.remat)")
  p.add_argument("--conv-impl", choices=CONV_IMPLS, default="auto",
                 help="our 3x3 convolution algorithm (IFIRNN.conv_impl, see layers.py)")
  p.add_argument("--device", choices=("cpu", "gpu"), default=None,
                 help="JAX device (default: JAX's default backend)")
  p.add_argument("--torch", action=argparse.BooleanOptionalAction, default=None,
                 help="also run the PyTorch reference (default: on for CPU when importable)")
  p.add_argument("--torch-threads", type=int, default=None,
                 help="torch.set_num_threads for the reference (default: os.cpu_count(); "
                 "on a machine shared with other work, 1 avoids OpenMP stalls)")
  p.add_argument("--scan-unroll", help="lax.scan unroll over frames: 'full' or integers, "
                 "comma-separated (train: every value is a variant, default full,1; "
                 "inference: the first is used, default 1)")
  p.add_argument("--processes", type=int, default=1,
                 help="train, CPU: run our step as this many processes, each pinned to one "
                 "core and holding its share of the batch, training together through "
                 "jax.distributed on loopback (as launch/cpu_processes.sh trains); PyTorch "
                 "still runs in one process with --torch-threads threads")
  p.add_argument("--cpu-devices", type=int, default=0,
                 help="train, CPU, one process: our step over this many CPU devices, each "
                 "running its share of the batch on one core (config.cpu_devices); 0: as "
                 "training does, one per core, as many as divide --batch; 1: one device "
                 "with XLA's thread pool")
  p.add_argument("--isolate", action=argparse.BooleanOptionalAction, default=True,
                 help="train: each variant in its own child process (clean peak memory)")
  p.add_argument("--matmul-size", type=int, default=None,
                 help="matmul size for the peak rate (default 2048 on CPU, 4096 on GPU)")
  p.add_argument("--data", help="train: also time the training input pipeline on this "
                 "dataset at the same batch, frames and crop (--height = --width), to compare "
                 "its clips/s with the step's")
  p.add_argument("--layout", default="gopro", help="--data's layout (gopro, dvd, bsd, generic)")
  p.add_argument("--blur-dir", default="blur_gamma", choices=("blur", "blur_gamma"),
                 help="--data: GOPRO's blur folder")
  p.add_argument("--cache-frames", action="store_true",
                 help="--data: decode every frame once into memory (as configs/demo.py does)")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", default="benchmark.json", help="JSON results (written atomically)")
  return p


def _cpu_devices(args: argparse.Namespace, platform: str) -> int:
  """--cpu-devices resolved: 1 unless a one-process CPU train step runs in a child."""
  if args.cpu_devices < 0:
    raise BenchmarkError(f"--cpu-devices must be >= 0 (0: one per core), got "
                         f"{args.cpu_devices}")
  one_process_child = (args.mode == "train" and platform == "cpu" and args.isolate
                       and args.processes == 1)
  if args.cpu_devices > 1 and not one_process_child:
    raise BenchmarkError("--cpu-devices > 1 is for --mode train on CPU with --isolate and "
                         "--processes 1")
  if not one_process_child:
    return 1
  batch = args.batch if args.batch is not None else MODE_DEFAULTS["train"]["batch"]
  try:
    return cpu_devices.resolve(args.cpu_devices, batch)
  except ValueError as e:
    raise BenchmarkError(str(e)) from None


def settings_from_args(args: argparse.Namespace) -> Settings:
  defaults = MODE_DEFAULTS[args.mode]
  pick = lambda name: defaults[name] if getattr(args, name) is None else getattr(args, name)  # noqa: E731
  platform = args.device or jax.default_backend()
  if platform not in ("cpu", "gpu", "cuda", "rocm"):
    raise BenchmarkError(f"JAX's default backend is {platform!r}; pass --device cpu or gpu")
  platform = "gpu" if platform in ("cuda", "rocm") else platform
  use_torch = args.torch
  if use_torch is None:
    use_torch = platform == "cpu" and torch_available()
  elif use_torch and not torch_available():
    raise BenchmarkError("--torch: PyTorch is not installed (pip install torch, or --no-torch)")
  models = tuple(m.strip() for m in pick("models").split(",") if m.strip())
  if not models:
    raise BenchmarkError("--models is empty")
  settings = Settings(
      mode=args.mode, models=models, widths=_parse_widths(pick("widths")),
      height=pick("height"), width=pick("width"), batch=pick("batch"), frames=pick("frames"),
      repeats=pick("repeats"), warmup=args.warmup, dtype=args.dtype,
      conv_impl=args.conv_impl, device=platform,
      torch=use_torch, torch_threads=args.torch_threads or os.cpu_count() or 1,
      scan_unroll=_parse_unroll(pick("scan_unroll")), isolate=args.isolate,
      matmul_size=args.matmul_size or (2048 if platform == "cpu" else 4096),
      seed=args.seed, out=args.out, data=args.data, layout=args.layout,
      blur_dir=args.blur_dir, cache_frames=args.cache_frames, processes=args.processes,
      cpu_devices=_cpu_devices(args, platform), remat=args.remat)
  if settings.data and settings.mode != "train":
    raise BenchmarkError("--data is for --mode train (it times the training input pipeline)")
  if settings.data and settings.height != settings.width:
    raise BenchmarkError(f"--data: the pipeline crops squares; pass --height equal to --width "
                         f"(got {settings.height}x{settings.width})")
  if settings.height < 4 or settings.width < 4 or settings.height % 4 or settings.width % 4:
    raise BenchmarkError(f"--height and --width must be positive multiples of 4, got "
                         f"{settings.height}x{settings.width}")
  if settings.repeats < 1 or settings.warmup < 0 or settings.batch < 0 or settings.frames < 0:
    raise BenchmarkError("--repeats must be >= 1, --warmup, --batch and --frames >= 0")
  if args.torch_threads is not None and args.torch_threads < 1:
    raise BenchmarkError(f"--torch-threads must be >= 1, got {args.torch_threads}")
  if settings.matmul_size < 1:
    raise BenchmarkError(f"--matmul-size must be >= 1, got {settings.matmul_size}")
  if settings.processes < 1:
    raise BenchmarkError(f"--processes must be >= 1, got {settings.processes}")
  if settings.processes > 1:
    cores = len(os.sched_getaffinity(0))
    if settings.mode != "train" or platform != "cpu" or not settings.isolate:
      raise BenchmarkError("--processes is for --mode train on CPU with --isolate")
    if settings.processes > cores:
      raise BenchmarkError(f"--processes {settings.processes}: this process may run on "
                           f"{cores} cores only")
    if settings.batch % settings.processes:
      raise BenchmarkError(f"--batch {settings.batch} must be divisible by --processes "
                           f"{settings.processes}")
  for name in models:
    make_model(name, settings)  # unknown names fail before anything is compiled
  if settings.mode == "train":
    if len(models) != 1:
      raise BenchmarkError(f"--mode train takes one model, got --models {','.join(models)}")
    if settings.batch < 1 or settings.frames < 1:
      raise BenchmarkError(f"--mode train needs --batch and --frames >= 1, got "
                           f"{settings.batch} and {settings.frames}")
    if settings.batch % settings.cpu_devices:
      raise BenchmarkError(f"--batch {settings.batch} must be divisible by --cpu-devices "
                           f"{settings.cpu_devices}")
  return settings


def run(settings: Settings) -> dict[str, Any]:
  """Runs the benchmark of `settings`, writing the report to settings.out as it goes."""
  device = select_device(settings.device)
  out = Path(settings.out)
  report: dict[str, Any] = {"mode": settings.mode, "environment": environment(device),
                            "settings": dataclasses.asdict(settings)}
  report["settings"]["scan_unroll"] = [_unroll_label(u) for u in settings.scan_unroll]
  save = lambda: write_json_atomic(out, report)  # noqa: E731
  if settings.mode == "inference":
    run_inference(settings, device, report, save)
  else:
    run_train(settings, device, report, save)
  return report


def main(argv: Sequence[str] | None = None) -> int:
  args = build_parser().parse_args(argv)
  if args.mode == "memory":
    try:
      report = run_memory(args)
    except BenchmarkError as e:
      print(f"error: {e}", file=sys.stderr)
      return 2
    print(memory_table(report))
    print(f"results: {args.out}")
    return 0
  if args.mode == "train" and args.isolate:
    # Several processes share the device: keep this one from preallocating GPU memory
    # (effective only before JAX first touches a device).
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
  try:
    settings = settings_from_args(args)
    report = run(settings)
  except BenchmarkError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(inference_table(report) if settings.mode == "inference" else train_table(report))
  print(f"results: {settings.out}")
  return 0


if __name__ == "__main__":
  huge_pages.restart_with_huge_pages()  # re-executes once (huge_pages.py)
  sys.exit(main())
