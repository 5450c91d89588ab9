"""launch/gpu_check.sh on this CPU at tiny sizes, within its time budget."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ifirnn_jax import gpu_check

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_writes_json_and_table_within_budget(tmp_path):
  """Every stage runs at tiny size on this CPU (about 70 s idle); the large budget only
  gives a busy machine slack: at tiny size no stage runs out its share."""
  out, budget = tmp_path / "out", 400
  start = time.perf_counter()
  env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
  result = subprocess.run(["bash", "launch/gpu_check.sh", str(out), str(budget)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=budget + 120)
  elapsed = time.perf_counter() - start
  assert result.returncode == 0, result.stderr[-2000:]
  assert elapsed < budget + 60  # The budget, plus start-up and the last child's kill.
  report = json.loads((out / "gpu_check.json").read_text())
  assert report["backend"] == "cpu" and report["tiny_sizes"] is True
  assert list(report["stages"]) == list(gpu_check.SHARES)
  for name, record in report["stages"].items():
    assert record["status"] == "ok", (name, record)
  for model in ("C1H1", "C2H3-reg"):  # Both on the CPU here: the same numbers.
    assert report["stages"]["parity"]["results"][model]["max_abs_diff"] < 1e-5
  for name in ("inference_float32", "inference_bfloat16", "train_step_float32",
               "train_step_bfloat16", "train_step_remat"):
    stage = json.loads((out / report["stages"][name]["json"]).read_text())
    assert stage["results"], name
  commands = json.loads((out / "commands.json").read_text())  # the commands vs their kernels
  assert commands["train"]["command"]["steps_per_s"] > 0
  assert commands["train"]["bare"]["steps_per_s"] > 0
  assert commands["deblur"]["command_frames_per_s"] > 0
  assert "share lost outside the kernel" in report["stages"]["commands"]["table"]
  remat = json.loads((out / "train_step_remat.json").read_text())
  assert remat["settings"]["remat"] is True
  train = report["stages"]["train"]
  assert train["steps"] >= 10 and "PSNR" in train["table"]  # its last checkpoint, evaluated
  table = (out / "gpu_check.md").read_text()
  summary = table.split("\n## ")[0]  # the stages' own tables follow (commands': Markdown)
  rows = [line for line in summary.splitlines() if line.startswith("| ")]
  assert rows[:2] == ["| stage | status | seconds | note |", "| --- | --- | --- | --- |"]
  assert [row.split(" | ")[0][2:] for row in rows[2:]] == list(gpu_check.SHARES)
  assert not list(out.glob("*.tmp"))  # Written through a temporary file and a rename.


def test_a_stage_out_of_time_is_skipped_with_its_reason():
  record = gpu_check._run_stage([sys.executable, "-c", "import time; time.sleep(30)"], 1)
  assert record["status"] == "skipped" and "out of time" in record["reason"]
  failed = gpu_check._run_stage([sys.executable, "-c", "raise SystemExit('boom')"], 30)
  assert failed["status"] == "failed" and "boom" in failed["reason"]


def test_bad_arguments_are_one_error_line(tmp_path):
  result = subprocess.run(["bash", "launch/gpu_check.sh", str(tmp_path), "soon"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 2
  assert result.stderr.strip() == "error: SECONDS must be a positive number, got 'soon'"


FAKE_TRAINING = """
import pathlib, signal, sys, time
workdir = pathlib.Path(sys.argv[1])
def stop(*_):
  print("stopped: the last complete checkpoint is step 2", file=sys.stderr)
  sys.exit(143)
signal.signal(signal.SIGTERM, stop)
for step in (1, 2):
  (workdir / "checkpoints" / str(step)).mkdir(parents=True)
time.sleep(60)
"""


def test_training_out_of_time_is_stopped_and_its_last_checkpoint_evaluated(tmp_path):
  train = [sys.executable, "-c", FAKE_TRAINING, str(tmp_path)]
  evaluate = [sys.executable, "-c", "print('| model | PSNR |')"]
  start = time.perf_counter()
  record = gpu_check._run_training(train, evaluate, tmp_path, timeout=10)
  assert time.perf_counter() - start < 10
  assert record["status"] == "ok" and record["stopped_by_time"] is True
  assert record["steps"] == 2 and record["table"] == "| model | PSNR |"


def test_training_without_a_checkpoint_is_reported(tmp_path):
  train = [sys.executable, "-c", "raise SystemExit('error: bad config')"]
  record = gpu_check._run_training(train, [sys.executable, "-c", "pass"], tmp_path, timeout=10)
  assert record["status"] == "failed" and "bad config" in record["reason"]
