"""launch/gpu_check.sh on this CPU at tiny sizes, within its time budget."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ifirnn_jax import gpu_check

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_writes_json_and_table_within_budget(tmp_path):
  out = tmp_path / "out"
  start = time.perf_counter()
  result = subprocess.run(["bash", "launch/gpu_check.sh", str(out), "60"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
  elapsed = time.perf_counter() - start
  assert result.returncode == 0, result.stderr[-2000:]
  assert elapsed < 60 + 60  # The budget, plus start-up and the last child's kill.
  report = json.loads((out / "gpu_check.json").read_text())
  assert report["backend"] == "cpu" and report["tiny_sizes"] is True
  assert list(report["stages"]) == list(gpu_check.SHARES)
  for name, record in report["stages"].items():
    assert record["status"] in ("ok", "skipped"), (name, record)  # None failed.
    if record["status"] != "ok":
      assert record["reason"], name
  # On a busy 2-core machine any stage may run out of its share; whatever ran is checked.
  if report["stages"]["parity"]["status"] == "ok":
    for model in ("C1H1", "C2H3-reg"):  # Both on the CPU here: the same numbers.
      assert report["stages"]["parity"]["results"][model]["max_abs_diff"] < 1e-5
  table = (out / "gpu_check.md").read_text()
  rows = [line for line in table.splitlines() if line.startswith("| ")]
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
