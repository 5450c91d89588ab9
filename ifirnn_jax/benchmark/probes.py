"""Small measurements: peak memory and RSS, the matmul rate, call timing, XLA's analyses."""

from __future__ import annotations

import math
import os
import resource
import statistics
import sys
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np


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
