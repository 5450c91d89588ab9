"""Where a train-step runner lives: its own child process, a group of single-core
processes training together over `jax.distributed`, or this process."""

from __future__ import annotations

import multiprocessing
import os
import time
from typing import Any

from ifirnn_jax import runtime
from ifirnn_jax.benchmark.probes import current_rss_bytes, peak_rss_bytes
from ifirnn_jax.benchmark.train_step import import_framework, open_train_variant, variant_name


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
    runtime.setup(job.get("cpu_devices", 1))  # also before JAX starts its backend
    import_framework(job["framework"])
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
    self.name = variant_name(job)
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
    self.name = variant_name(job)
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
    import_framework(job["framework"])
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
