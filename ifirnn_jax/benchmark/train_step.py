"""The train-step runners: ours (the step `train.py` trains with) and PyTorch's.

Each runner is `step() -> seconds` and `summary() -> dict`, built from a job dict
(`open_train_variant`) so that it can be built in a child process as well (variants.py).
"""

from __future__ import annotations

import os
import time
from typing import Any

import jax
import numpy as np

from ifirnn_jax.training import default_config
from ifirnn_jax.benchmark.probes import peak_memory, xla_flops, xla_memory
from ifirnn_jax.benchmark.settings import (BenchmarkError, BenchmarkSettings, make_model, select_device,
                                           torch_architecture, torch_device, unroll_label)


def variant_name(job: dict[str, Any]) -> str:
  if job["framework"] == "torch":
    return "torch"
  name = f"jax scan_unroll={unroll_label(job['scan_unroll'])}"
  processes, devices = job.get("num_processes", 1), job.get("cpu_devices", 1)
  if processes > 1:
    return f"{name}, {processes} processes x 1 core"
  return name if devices == 1 else f"{name}, {devices} CPU devices x 1 core"


class JaxTrainStep:
  """The step training runs (`train.make_train_step`: Adam of `train.create_optimizer`,
  content loss), compiled ahead of time.

  Over one device, over several CPU devices of this process (job 'cpu_devices' > 1),
  or (job 'num_processes' > 1) data parallel over the processes of a `jax.distributed`
  run, each holding its slice of the batch, as training runs them.
  """

  def __init__(self, job: dict[str, Any], settings: BenchmarkSettings, blur: np.ndarray,
               sharp: np.ndarray):
    import functools
    from ifirnn_jax import train
    from ifirnn_jax.storage import weights
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
    model = make_model(job["model"], settings, job["scan_unroll"])
    self.rolled = job["scan_unroll"] is not True and job["scan_unroll"] < settings.frames
    config = default_config.base_config()
    config.model.name = job["model"]
    config.lr_halve_every_steps = 10**9   # a constant lr (1e-4) over the benchmark
    tx = train.create_optimizer(config)
    step = train.make_train_step(model, tx, train.create_learning_rate_fn(config),
                                 train.data_mesh(devices), reg_lambda=config.reg_lambda,
                                 reg_tau=config.reg_tau)
    params = weights.load_weights(job["weights_path"], model)
    replicate = lambda f: jax.jit(f, out_shardings=step.replicated)  # noqa: E731
    self.state = replicate(functools.partial(train.init_train_state, tx=tx))(params)
    self.seed_key = replicate(lambda: jax.random.key(settings.seed))()
    self.first_bad_step = replicate(lambda: jax.numpy.zeros((), jax.numpy.int32))()
    per_process = len(blur) // jax.process_count()  # this process's clips
    rows = slice(per_process * jax.process_index(), per_process * (jax.process_index() + 1))
    self.batch = {k: jax.make_array_from_process_local_data(step.data_sharding, v[rows],
                                                            v.shape)
                  for k, v in (("blur", blur), ("sharp", sharp))}
    start = time.perf_counter()
    self.compiled = step.fn.lower(self.state, self.batch, self.seed_key,
                                  self.first_bad_step).compile()
    self.compile_s = time.perf_counter() - start
    self.first_loss: float | None = None

  def step(self) -> float:
    start = time.perf_counter()
    self.state, metrics = self.compiled(self.state, self.batch, self.seed_key,
                                        self.first_bad_step)
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

  def __init__(self, job: dict[str, Any], settings: BenchmarkSettings, blur: np.ndarray,
               sharp: np.ndarray):
    import torch
    from ifirnn_jax.model import torch_reference
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

  job: framework ('jax' | 'torch'), scan_unroll, model, settings (a BenchmarkSettings as a dict),
  weights_path (the shared initial weights), batch_path (.npz with 'blur' and 'sharp').
  """
  settings = BenchmarkSettings(**job["settings"])
  data = np.load(job["batch_path"])
  cls = TorchTrainStep if job["framework"] == "torch" else JaxTrainStep
  return cls(job, settings, data["blur"], data["sharp"])


def import_framework(framework: str) -> None:
  if framework == "torch":
    import torch  # noqa: F401
    from ifirnn_jax.model import torch_reference
  else:
    from ifirnn_jax import train  # noqa: F401
