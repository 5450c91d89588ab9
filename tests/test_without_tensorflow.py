"""Training, evaluation, deblurring, export and benchmark with TensorFlow unimportable.

Each command runs in a subprocess whose `tensorflow` and `tensorflow_datasets` are
None in sys.modules, so any import of them raises ImportError.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import data_trees

ROOT = Path(__file__).resolve().parents[1]
SHIM = ("import sys; sys.modules['tensorflow'] = None; "
        "sys.modules['tensorflow_datasets'] = None; ")


def _run_without_tensorflow(code: str, timeout: int = 600) -> subprocess.CompletedProcess:
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
  return subprocess.run([sys.executable, "-c", SHIM + code], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout)


def test_the_commands_import_without_tensorflow():
  result = _run_without_tensorflow(
      "import ifirnn_jax.train, ifirnn_jax.evaluate, ifirnn_jax.deblur, "
      "ifirnn_jax.export, ifirnn_jax.benchmark.cli, data_pipeline.numpy_pipeline; "
      "from data_pipeline import loaders; print(loaders.resolve_loader('auto'))")
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == "numpy"


def test_tfds_builders_say_what_to_install():
  result = _run_without_tensorflow("import data_pipeline.tfds_builders")
  assert result.returncode != 0
  assert "tensorflow-datasets, which is not installed" in result.stderr


def _train_without_tensorflow(root, workdir, *flags) -> subprocess.CompletedProcess:
  """`python -m ifirnn_jax.train` on the tiny demo config over `root`, without TensorFlow."""
  argv = ["train", "--config", "configs/demo.py:tiny", f"--config.data.root={root}",
          "--config.data.make_default_if_missing=False", *flags, "--workdir", str(workdir)]
  return _run_without_tensorflow(f"import runpy; sys.argv = {argv!r}; "
                                 "runpy.run_module('ifirnn_jax.train', run_name='__main__')")


def test_tfdata_loader_without_tensorflow_fails_with_one_error_line(tmp_path):
  root = data_trees.gopro_tree(tmp_path / "data")
  result = _train_without_tensorflow(root, tmp_path / "w", "--config.data.loader=tfdata")
  # No silent fall-back when tf.data was asked for: one error line, exit 2.
  assert result.returncode == 2, result.stderr[-2000:]
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("error: config.data.loader='tfdata' needs TensorFlow"), last
  assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_training_runs_and_prints_its_table_without_tensorflow(tmp_path):
  root = data_trees.gopro_tree(tmp_path / "data", frames=8)
  workdir = tmp_path / "run"
  result = _train_without_tensorflow(root, workdir)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "Training input: numpy" in result.stderr
  assert "blurry input" in result.stdout and "gain" in result.stdout
  events = list(workdir.glob("events.out.tfevents.*"))
  assert events and events[0].stat().st_size > 0  # tensorboardX's event file.
  assert (workdir / "eval").is_dir()
