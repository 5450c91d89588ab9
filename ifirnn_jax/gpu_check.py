"""One prepared accelerator check within a fixed time budget (launch/gpu_check.sh).

    python -m ifirnn_jax.gpu_check OUT_DIR [SECONDS]

Stages, in this order, each a child process with its share of the budget (a stage out
of time is killed and recorded as skipped, with the reason): the commands against their
kernels (benchmark --mode commands: the `train` command's steps/s against its bare
jitted step, the `deblur` command's frames/s against the bare model); parity of the
model on the default device against the CPU (float32, matmul precision 'highest') for
C1H1 and C2H3-reg; the inference table (benchmark/) of C1H1, C2H3, C2H4 at 960x540,
float32 and bfloat16, PyTorch on the same device when importable; the train-step table
(benchmark/) of C2H3-reg at 4 x 12 x 256x256: float32, bfloat16 and float32 with
remat, each with its peak memory; and the real `train` command (configs/demo.py at
accelerator size) for its share of the time, stopped with SIGTERM, then its last
checkpoint evaluated on the held-out set. On a CPU backend every size is tiny. Writes
OUT_DIR/gpu_check.json after every stage and OUT_DIR/gpu_check.md at the end, both
atomically; exits 0 unless the arguments are bad.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from data_pipeline.safe_io import files
from data_pipeline.commandline import termination
from ifirnn_jax.benchmark.settings import SPEC_WIDTHS
from ifirnn_jax.model.network import COMPUTE_DTYPES

ROOT = Path(__file__).resolve().parents[1]
# Share of the whole budget each stage may use (the rest is start-up and slack), in the
# order the stages run: first what a lent accelerator should answer at once, the share
# of the kernels' speed the commands reach.
SHARES = {"commands": 0.2, "parity": 0.1, "inference_float32": 0.18,
          "inference_bfloat16": 0.13, "train_step_float32": 0.11, "train_step_bfloat16": 0.09,
          "train_step_remat": 0.09, "train": 0.3}
# At tiny sizes (a CPU backend) a stage's time is its processes' start-up and compiling,
# and the commands stage starts three of them (about 32 s on 2 cores): this share gives
# it two thirds of a 60 s budget.
TINY_SHARES = dict(SHARES, commands=2.0)
TINY_WIDTHS = "4,6,8,4,1"
# Of the train stage: training, then SIGTERM's grace to finish a save, then evaluation.
TRAIN_SHARE, GRACE_SHARE, EVALUATION_SHARE = 0.6, 0.1, 0.3


def parity(small: bool) -> dict[str, Any]:
  """Max |device - CPU| of the output of C1H1 and C2H3-reg on one random clip."""
  import jax
  import numpy as np

  from ifirnn_jax.benchmark import cli, settings as bench_settings
  shape = (1, 2, 16, 24, 3) if small else (1, 4, 128, 128, 3)
  args = ["--models", "C1H1", "--device", "cpu"]
  if small:
    args += ["--widths", TINY_WIDTHS]
  settings = cli.settings_from_args(cli.build_parser().parse_args(args))
  blur = np.random.default_rng(0).uniform(size=shape).astype(np.float32)
  results = {}
  for name in ("C1H1", "C2H3-reg"):
    model = bench_settings.make_model(name, settings)
    params = model.init(jax.random.key(0))
    outputs = {}
    with jax.default_matmul_precision("highest"):
      for label, device in (("device", jax.devices()[0]), ("cpu", jax.devices("cpu")[0])):
        put = lambda x, d=device: jax.device_put(x, d)  # noqa: E731
        out, _, _ = jax.jit(model.apply_sequence)(jax.tree.map(put, params), put(blur))
        outputs[label] = np.asarray(out, np.float64)
    results[name] = {"max_abs_diff": float(np.abs(outputs["device"] - outputs["cpu"]).max()),
                     "shape": list(shape), "device": str(jax.devices()[0])}
  return results


def _stage_commands(small: bool, out: Path, torch: bool) -> dict[str, list[str]]:
  python = [sys.executable]
  infer = ["-m", "ifirnn_jax.benchmark", "--mode", "inference", "--models", "C1H1,C2H3,C2H4"]
  step = ["-m", "ifirnn_jax.benchmark", "--mode", "train", "--models", "C2H3-reg",
          "--scan-unroll", "1"]
  if small:
    infer += ["--widths", TINY_WIDTHS, "--height", "16", "--width", "24", "--frames", "2",
              "--repeats", "2", "--matmul-size", "256", "--no-torch"]
    step += ["--widths", TINY_WIDTHS, "--height", "16", "--width", "16", "--batch", "2",
             "--frames", "2", "--repeats", "2", "--matmul-size", "256", "--no-torch",
             "--no-isolate"]
    train = ["--config", "configs/demo.py:tiny", "--config.num_train_steps=20",
             "--config.eval_every_steps=20", "--config.checkpoint_every_steps=10",
             "--config.log_every_steps=10"]
    evaluate = ["--data", "data/default_tiny", "--skip-first", "1", "--skip-last", "1"]
    cmds = ["-m", "ifirnn_jax.benchmark", "--mode", "commands", "--config",
            "configs/demo.py:tiny", "--repeats", "5", "--widths", TINY_WIDTHS,
            "--height", "32", "--width", "48", "--frames", "4"]
  else:
    infer += ["--torch" if torch else "--no-torch"]
    step += ["--height", "256", "--width", "256", "--batch", "4", "--frames", "12",
             "--widths", ",".join(map(str, SPEC_WIDTHS)), "--no-torch"]
    train = ["--config", "configs/demo.py", "--config.batch_size=16",
             "--config.crop_size=256", "--config.clip_length=12",
             "--config.num_train_steps=100000", "--config.cpu_devices=1",
             "--config.eval_every_steps=100000", "--config.checkpoint_every_steps=100"]
    evaluate = ["--data", "data/default"]
    cmds = ["-m", "ifirnn_jax.benchmark", "--mode", "commands", "--config",
            "configs/demo.py", *(f"--override={o.removeprefix('--config.')}"
                                 for o in train[2:5] + train[6:7]),
            "--repeats", "50", "--models", "C2H3", "--widths", ",".join(map(str, SPEC_WIDTHS)),
            "--height", "540", "--width", "960", "--frames", "60"]
  commands = {}
  for dtype in COMPUTE_DTYPES:
    commands[f"inference_{dtype}"] = python + infer + [
        "--dtype", dtype, "--out", str(out / f"inference_{dtype}.json"), "--overwrite"]
    commands[f"train_step_{dtype}"] = python + step + [
        "--dtype", dtype, "--out", str(out / f"train_step_{dtype}.json"), "--overwrite"]
  commands["commands"] = python + cmds + ["--out", str(out / "commands.json"), "--overwrite"]
  commands["train_step_remat"] = python + step + [
      "--dtype", "float32", "--remat", "--out", str(out / "train_step_remat.json"),
      "--overwrite"]
  workdir = str(train_workdir(out, small))
  commands["train"] = python + ["-m", "ifirnn_jax.train", *train, "--workdir", workdir]
  commands["train_evaluation"] = python + ["-m", "ifirnn_jax.evaluate", "--workdir", workdir,
                                           *evaluate, "--out", str(out / "train_evaluation"),
                                           "--overwrite"]
  return commands


def train_workdir(out: Path, small: bool) -> Path:
  """The train stage's workdir: one per mode, since a workdir's config is its identity (a
  run into the same `out` in the other mode would be refused as a changed config)."""
  return out / f"train_workdir_{'small' if small else 'full'}"


def _child_env() -> dict[str, str]:
  return dict(os.environ, PYTHONPATH=str(ROOT), XLA_PYTHON_CLIENT_PREALLOCATE="false")


def _run_training(train: list[str], evaluate: list[str], workdir: Path,
                  timeout: float) -> dict[str, Any]:
  """Trains for TRAIN_SHARE of `timeout`, stops it as `timeout` would (SIGTERM: the run
  keeps its last complete checkpoint), then evaluates that checkpoint on the held-out set."""
  start = time.perf_counter()
  process = subprocess.Popen(train, cwd=ROOT, env=_child_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
  try:
    _, stderr = process.communicate(timeout=max(timeout * TRAIN_SHARE, 1))
    stopped = False
  except subprocess.TimeoutExpired:
    process.send_signal(signal.SIGTERM)
    try:
      _, stderr = process.communicate(timeout=max(timeout * GRACE_SHARE, 1))
    except subprocess.TimeoutExpired:
      process.kill()
      _, stderr = process.communicate()
    stopped = True
  steps = sorted(int(p.name) for p in (workdir / "checkpoints").glob("*") if p.name.isdigit())
  record = {"train_seconds": round(time.perf_counter() - start, 1),
            "stopped_by_time": stopped, "steps": steps[-1] if steps else 0}
  if not steps:
    tail = (stderr or "").strip().splitlines()[-1:] or [""]
    return dict(record, status="skipped" if stopped else "failed",
                seconds=record["train_seconds"],
                reason=f"no checkpoint saved in the time given (train: {tail[0]})")
  left = timeout - (time.perf_counter() - start)
  evaluation = _run_stage(evaluate, max(left, timeout * EVALUATION_SHARE))
  evaluation["seconds"] = round(time.perf_counter() - start, 1)
  return dict(evaluation, **record, command=train[1:])


def _run_stage(command: list[str], timeout: float) -> dict[str, Any]:
  start = time.perf_counter()
  env = _child_env()
  try:
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=max(timeout, 1))
  except subprocess.TimeoutExpired:
    return {"status": "skipped", "reason": f"out of time (budget {timeout:.0f} s)",
            "seconds": round(time.perf_counter() - start, 1)}
  record = {"seconds": round(time.perf_counter() - start, 1), "command": command[1:]}
  if result.returncode:
    tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or [""]
    return dict(record, status="failed", reason=f"exit {result.returncode}: {tail[0]}")
  return dict(record, status="ok", table=result.stdout.strip())


def run(out: Path, seconds: float) -> dict[str, Any]:
  """Runs every stage within `seconds`, writing out/gpu_check.json as it goes."""
  deadline = time.perf_counter() + seconds
  import jax
  from ifirnn_jax import runtime
  backend = runtime.default_platform()
  small = backend == "cpu"
  try:
    import torch  # noqa: F401
    has_torch = True
  except ImportError:
    has_torch = False
  report: dict[str, Any] = {
      "backend": backend, "device": str(jax.devices()[0]), "jax": jax.__version__,
      "budget_s": seconds, "tiny_sizes": small, "stages": {}}
  json_path = out / "gpu_check.json"
  save = lambda: files.write_json_atomic(json_path, report, indent=1)  # noqa: E731
  save()
  commands = _stage_commands(small, out, has_torch and not small)
  commands["parity"] = [sys.executable, "-m", "ifirnn_jax.gpu_check", "--parity",
                        "small" if small else "full"]
  shares = TINY_SHARES if small else SHARES
  names = list(shares)
  for position, name in enumerate(names):
    # Its share of what is left: time a stage does not use goes to the later ones.
    left = deadline - time.perf_counter() - 2
    budget = left * shares[name] / sum(shares[n] for n in names[position:])
    if budget < 1:
      report["stages"][name] = {"status": "skipped", "reason": "no time left in the budget"}
    else:
      if name == "train":
        record = _run_training(commands["train"], commands["train_evaluation"],
                               train_workdir(out, small), budget)
      else:
        record = _run_stage(commands[name], budget)
      if name == "parity" and record["status"] == "ok":
        record["results"] = json.loads(record.pop("table").splitlines()[-1])
      elif record["status"] == "ok" and name != "train":
        path = out / f"{name}.json"
        record["json"] = path.name if path.is_file() else None
      report["stages"][name] = record
    save()
  files.write_text_atomic(out / "gpu_check.md", markdown(report))
  return report


def markdown(report: dict[str, Any]) -> str:
  """A short Markdown summary: one row per stage, then each stage's own table."""
  lines = [f"# gpu_check: {report['device']} (jax {report['jax']}, backend "
           f"{report['backend']}{', tiny sizes' if report['tiny_sizes'] else ''})", "",
           "| stage | status | seconds | note |", "| --- | --- | --- | --- |"]
  for name, record in report["stages"].items():
    note = record.get("reason", "")
    if name == "parity" and "results" in record:
      note = ", ".join(f"{m}: max abs diff {r['max_abs_diff']:.2e}"
                       for m, r in record["results"].items())
    if name == "train" and "steps" in record:
      note = (f"{record['steps']} steps in {record['train_seconds']} s"
              f"{' (stopped by time)' if record['stopped_by_time'] else ''}; {note}").rstrip("; ")
    lines.append(f"| {name} | {record['status']} | {record.get('seconds', '')} | {note} |")
  for name, record in report["stages"].items():
    if record.get("table"):
      lines += ["", f"## {name}", "", "```", record["table"], "```"]
  return "\n".join(lines) + "\n"


def check(argv: list[str]) -> None:
  """Runs the check of the command line (OUT_DIR [SECONDS]) and prints its summary."""
  if not 1 <= len(argv) <= 2:
    raise termination.UsageError("usage: gpu_check OUT_DIR [SECONDS]")
  try:
    seconds = float(argv[1]) if len(argv) == 2 else 480.0
  except ValueError:
    seconds = -1
  if seconds <= 0:
    raise termination.UsageError(f"SECONDS must be a positive number, got {argv[1]!r}")
  out = Path(argv[0])
  out.mkdir(parents=True, exist_ok=True)
  print(markdown(run(out, seconds)))


def main(argv: list[str]) -> int:
  """The command line; returns the exit status (0, 2 bad input, 130 Ctrl-C, 143 SIGTERM)."""
  if any(a in ("-h", "--help") for a in argv):  # not an OUT_DIR named --help
    print(__doc__.strip())
    return 0
  if len(argv) == 2 and argv[0] == "--parity":
    print(json.dumps(parity(argv[1] == "small")))
    return 0
  return termination.run_command(lambda: check(argv), (OSError,),
                                 "the stages finished so far are in OUT_DIR/gpu_check.json")


if __name__ == "__main__":
  from ifirnn_jax import runtime
  runtime.setup()
  sys.exit(main(sys.argv[1:]))
