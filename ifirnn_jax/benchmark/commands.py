"""--mode commands: the `train` and `deblur` commands timed against their bare kernels.

Train: the `train` command (`python -m ifirnn_jax.train --config CONFIG`, a fresh
workdir, validation and checkpoints only after the timed steps) logs its steps/s every
`repeats` steps; the steps/s of its second log interval (compilation and start-up are
in the first) stands next to the bare jitted step of the same config (the same model,
optimizer, batch and devices, `train.make_train_step`) dispatched `repeats` times back
to back on one fixed batch with one wait at the end (over several CPU devices one step
queued at most, as the loop runs them there: train.max_steps_ahead).

Deblur: `deblur.run` (the command's code: decode a synthetic H.264 video, the model,
clip and encode into H.264) on `frames` frames of height x width, timed after a run of
two frames that compiles the step, next to the bare streaming step (`IFIRNN.step` of
the same model on a frame already on the device) dispatched `frames` times back to back
with one wait at the end; command and bare step take turns DEBLUR_ROUNDS times and the
median of each counts, so a machine whose speed drifts moves both alike. The video's
opening and closing (ffmpeg's start, x264's last frames) are in the command's time, so
a short video understates its steady rate: the default is 4 s of 30 fps video.

The share lost outside the kernel = 1 - command / bare. Each side runs in a child
process of its own (the train command as the real command; the bare step and the deblur
pair through `python -m ifirnn_jax.benchmark.commands`), one after the other.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from data_pipeline.safe_io import files
from ifirnn_jax.benchmark.settings import BenchmarkError

ROOT = Path(__file__).resolve().parents[2]
COMMANDS_DEFAULTS = dict(config="configs/demo.py", repeats=100, height=540, width=960,
                         frames=120, models="C1H1", widths="16,24,32,16,3")
DEBLUR_ROUNDS = 3


def load_config(config_arg: str, overrides: list[str] = ()) -> Any:
  """configs/<x>.py[:arg] -> its get_config(arg), with 'field=value' overrides."""
  path, _, arg = config_arg.partition(":")
  if not Path(path).is_file():
    raise BenchmarkError(f"--config {config_arg}: no such config file")
  spec = importlib.util.spec_from_file_location("benchmark_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(arg or None)
  for item in overrides:
    field, _, text = item.partition("=")
    node, *path = [config, *field.split(".")]
    try:
      for name in path:
        node = node[name]
    except (KeyError, AttributeError, TypeError):
      node = None
    if not text or node is None:
      raise BenchmarkError(f"--override {item!r}: not 'field=value' of a config field")
    kind = type(node)
    value = (text.lower() in ("1", "true")) if kind is bool else kind(text)
    config.update_from_flattened_dict({field: value})
  return config


def _child(args: list[str], timeout: float | None = None) -> dict[str, Any]:
  """Runs `python -m ifirnn_jax.benchmark.commands ARGS`; its last stdout line (JSON)."""
  result = subprocess.run([sys.executable, "-m", "ifirnn_jax.benchmark.commands", *args],
                          cwd=Path.cwd(), capture_output=True, text=True, timeout=timeout)
  if result.returncode:
    raise BenchmarkError(f"benchmark child {args[0]} failed (exit {result.returncode}): "
                         f"{result.stderr.strip()[-1500:]}")
  return json.loads(result.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ train
_STEPS_PER_SEC = re.compile(r"\[(\d+)\] .*steps_per_sec=([0-9.eE+-]+)")


def train_command_steps_per_s(config_arg: str, repeats: int, workdir: Path,
                              overrides: list[str] = ()) -> dict[str, Any]:
  """The `train` command's steps/s over steps repeats+1..2*repeats (from its log)."""
  steps = 2 * repeats
  command = [sys.executable, "-m", "ifirnn_jax.train", "--config", config_arg,
             "--workdir", str(workdir), *(f"--config.{o}" for o in overrides),
             f"--config.num_train_steps={steps}",
             f"--config.log_every_steps={repeats}", f"--config.eval_every_steps={steps}",
             f"--config.checkpoint_every_steps={steps}", "--config.final_eval=False"]
  start = time.perf_counter()
  result = subprocess.run(command, cwd=Path.cwd(), capture_output=True, text=True)
  seconds = time.perf_counter() - start
  if result.returncode:
    raise BenchmarkError(f"the train command failed (exit {result.returncode}): "
                         f"{result.stderr.strip()[-1500:]}")
  logged = {int(s): float(v) for s, v in _STEPS_PER_SEC.findall(result.stderr)}
  if steps not in logged:
    raise BenchmarkError(f"the train command logged no steps/s at step {steps}: "
                         f"{result.stderr.strip()[-1500:]}")
  return {"steps_per_s": logged[steps], "logged_steps_per_s": logged,
          "command_seconds": round(seconds, 1), "command": command[1:]}


def bare_train_steps_per_s(config_arg: str, repeats: int,
                           overrides: list[str] = ()) -> dict[str, Any]:
  """The config's jitted train step on one fixed batch: `repeats` steps dispatched back
  to back, one wait at the end (run in a fresh process: it fixes the CPU devices)."""
  import functools
  import inspect
  import jax
  from ifirnn_jax import runtime, train
  from ifirnn_jax.runtime import cpu_devices
  config = load_config(config_arg, overrides)
  count = cpu_devices.resolve(config.cpu_devices, config.batch_size)
  runtime.setup(count)
  mesh = train.data_mesh(cpu_devices.training_devices(count))
  model = train.create_model(config)
  tx, lr_fn = train.create_optimizer(config), train.create_learning_rate_fn(config)
  step = train.make_train_step(model, tx, lr_fn, mesh, reg_lambda=config.reg_lambda,
                               reg_tau=config.reg_tau)
  key = jax.random.key(config.seed)
  state = jax.jit(functools.partial(train.init_train_state, tx=tx),
                  out_shardings=step.replicated)(train.initial_params(config, model, key))
  rng = np.random.default_rng(0)
  shape = (config.batch_size, config.clip_length, config.crop_size, config.crop_size, 3)
  sharp = rng.uniform(size=shape).astype(np.float32)
  batch = {"blur": jax.device_put(np.clip(sharp + rng.normal(0, 0.05, shape), 0, 1)
                                  .astype(np.float32), step.data_sharding),
           "sharp": jax.device_put(sharp, step.data_sharding)}
  try:  # the per-clip noise keys and sigmas the loaders give with the frames
    from ifirnn_jax.training import input_noise
  except ImportError:  # a version that adds the noise on the host
    input_noise = None
  if input_noise is not None and config.noise_std_sigma > 0:
    batch.update(input_noise.example_fields(config.batch_size, config.noise_std_sigma,
                                            step.data_sharding))
  # The loop's argument that carries the first non-finite step (absent in older loops).
  extra = ((jax.jit(lambda: jax.numpy.zeros((), jax.numpy.int32),
                    out_shardings=step.replicated)(),)
           if "first_bad_step" in inspect.signature(train.train_step).parameters else ())
  for _ in range(3):  # compiles, then settles
    state, metrics = step.fn(state, batch, key, *extra)
  jax.block_until_ready((state, metrics))
  # Back to back, bounded as the loop bounds it over several CPU devices (more steps
  # queued there deadlock the all-reduce's rendezvous: train.max_steps_ahead).
  several_cpu = mesh.size > 1 and mesh.devices.flat[0].platform == "cpu"
  ahead = 1 if several_cpu else 0  # 0: no bound
  queue = []
  start = time.perf_counter()
  for _ in range(repeats):
    state, metrics = step.fn(state, batch, key, *extra)
    queue.append(metrics["loss"])
    if ahead and len(queue) > ahead:
      jax.block_until_ready(queue.pop(0))
  jax.block_until_ready((state, metrics))
  seconds = time.perf_counter() - start
  return {"steps_per_s": repeats / seconds, "step_s": seconds / repeats,
          "devices": mesh.size}


# ------------------------------------------------------------------ deblur
def deblur_pair(models: str, widths: str, height: int, width: int,
                frames: int) -> dict[str, Any]:
  """frames/s of `deblur.run` on a synthetic video and of the bare streaming step."""
  import jax
  from data_pipeline.video import FrameSink
  from ifirnn_jax import deblur, runtime
  from ifirnn_jax.storage import weights
  from ifirnn_jax.benchmark.memory import synthetic_frames
  from ifirnn_jax.benchmark.settings import model_at_widths, parse_widths
  runtime.setup(stream_frames=True)  # as deblur's main
  model = model_at_widths(models, parse_widths(widths))
  with tempfile.TemporaryDirectory(prefix="ifirnn_commands_") as folder:
    folder = Path(folder)
    weight_file = weights.save_weights(model.init(jax.random.key(0)),
                                       folder / "model.safetensors", model=model)
    video = folder / "in.mp4"
    with FrameSink(video, fps=30) as sink:
      for frame in synthetic_frames(frames, height, width):
        sink.write(frame)

    def command(count: int) -> float:
      args = deblur.build_parser().parse_args(
          ["--input", str(video), "--output", str(folder / f"out_{count}.mp4"),
           "--weights", str(weight_file), "--max-frames", str(count), "--overwrite"])
      start = time.perf_counter()
      deblur.run(args)
      return time.perf_counter() - start

    loaded, params = weights.load_model(weight_file)
    frame = jax.device_put(next(synthetic_frames(1, height, width)))

    def bare(count: int) -> float:
      state = loaded.initial_state(height, width)
      start = time.perf_counter()
      for _ in range(count):
        out, state = loaded.step(params, frame, state)
      jax.block_until_ready((out, state))
      return time.perf_counter() - start

    with contextlib.redirect_stderr(io.StringIO()):  # the command's progress lines
      command(2)  # compiles the step
      bare(2)
      rounds = [(command(frames), bare(frames)) for _ in range(DEBLUR_ROUNDS)]
    command_s = float(np.median([c for c, _ in rounds]))
    bare_s = float(np.median([b for _, b in rounds]))
  return {"command_frames_per_s": frames / command_s, "bare_frames_per_s": frames / bare_s,
          "rounds_seconds": [[round(c, 3), round(b, 3)] for c, b in rounds],
          "model": model.name, "height": height, "width": width, "frames": frames}


# ------------------------------------------------------------------ the mode
def run_commands(args: argparse.Namespace) -> dict[str, Any]:
  """Both pairs, each side in a child process; writes args.out after each."""
  config_arg = args.config or COMMANDS_DEFAULTS["config"]
  repeats = args.repeats or COMMANDS_DEFAULTS["repeats"]
  pick = lambda name: getattr(args, name) or COMMANDS_DEFAULTS[name]  # noqa: E731
  if repeats < 1:
    raise BenchmarkError(f"--repeats must be >= 1, got {repeats}")
  load_config(config_arg, args.override)  # a bad config fails before anything runs
  load = os.getloadavg()
  report: dict[str, Any] = {"mode": "commands", "config": config_arg, "repeats": repeats,
                            "overrides": list(args.override),
                            "cpu_count": os.cpu_count(), "load_average_1m_before": load[0]}
  save = lambda: files.write_json_atomic(Path(args.out), report)  # noqa: E731
  files.status(f"train command: {config_arg}, {2 * repeats} steps ...")
  with tempfile.TemporaryDirectory(prefix="ifirnn_commands_") as workdir:
    command = train_command_steps_per_s(config_arg, repeats, Path(workdir) / "run",
                                        args.override)
  files.status(f"bare train step: {config_arg}, {repeats} steps back to back ...")
  bare = _child(["bare-train", config_arg, str(repeats), *args.override])
  report["train"] = dict(command=command, bare=bare,
                         share_lost_percent=100 * (1 - command["steps_per_s"]
                                                   / bare["steps_per_s"]))
  save()
  height, width, frames = pick("height"), pick("width"), pick("frames")
  files.status(f"deblur command and bare step: {pick('models')} at {width}x{height}, "
               f"{frames} frames ...")
  pair = _child(["deblur", pick("models"), pick("widths"), str(height), str(width),
                 str(frames)])
  report["deblur"] = dict(pair, share_lost_percent=100 * (
      1 - pair["command_frames_per_s"] / pair["bare_frames_per_s"]))
  report["load_average_1m_after"] = os.getloadavg()[0]
  save()
  return report


def commands_table(report: dict[str, Any]) -> str:
  """The command-vs-kernel table of a --mode commands report."""
  lines = ["| command | command | bare kernel | share lost outside the kernel |",
           "|---|---|---|---|"]
  if "train" in report:
    t = report["train"]
    lines.append(f"| train ({report['config']}, {t['bare']['devices']} devices) | "
                 f"{t['command']['steps_per_s']:.2f} steps/s | "
                 f"{t['bare']['steps_per_s']:.2f} steps/s | {t['share_lost_percent']:.1f}% |")
  if "deblur" in report:
    d = report["deblur"]
    lines.append(f"| deblur ({d['model']}, {d['width']}x{d['height']}, {d['frames']} frames) | "
                 f"{d['command_frames_per_s']:.2f} frames/s | {d['bare_frames_per_s']:.2f} "
                 f"frames/s | {d['share_lost_percent']:.1f}% |")
  return "\n".join(lines)


def _main(argv: list[str]) -> None:
  if argv[0] == "bare-train":
    result = bare_train_steps_per_s(argv[1], int(argv[2]), argv[3:])
  else:
    _, models, widths, height, width, frames = argv
    result = deblur_pair(models, widths, int(height), int(width), int(frames))
  print(json.dumps(result))


if __name__ == "__main__":
  _main(sys.argv[1:])
