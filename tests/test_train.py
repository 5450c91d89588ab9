"""Training end to end on a tiny config: devices, processes, exact resume, failures.

Runs are real `python -m ifirnn_jax.train` processes (the device count is fixed when
JAX starts), on a small GOPRO-layout tree written here.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
  """GOPRO layout: train/test sequences of smooth images, blur = a horizontal box blur."""
  from data_pipeline import image_io
  root = tmp_path_factory.mktemp("gopro")
  rng = np.random.default_rng(0)
  for split, count in (("train", 2), ("test", 1)):
    for s in range(count):
      base = rng.uniform(size=(40, 56, 3))
      for t in range(8):
        sharp = np.roll(base, t, axis=1)
        sharp = (sharp + np.roll(sharp, 1, 0) + np.roll(sharp, 1, 1)) / 3
        blur = np.mean([np.roll(sharp, d, axis=1) for d in range(-2, 3)], axis=0)
        for folder, image in (("sharp", sharp), ("blur", blur), ("blur_gamma", blur)):
          path = root / split / f"seq{s}" / folder / f"{t + 100:06d}.png"
          path.parent.mkdir(parents=True, exist_ok=True)
          image_io.write_image(path, np.round(image * 255).astype(np.uint8))
  return root


def _train_cmd(dataset, workdir, *extra):
  # The demo's tiny variant as a C2H2 (two cells, two iterations: the whole recurrence).
  return [sys.executable, "-m", "ifirnn_jax.train", "--config", "configs/demo.py:tiny",
          "--config.model.name=C2H2",
          f"--config.data.root={dataset}", "--config.data.make_default_if_missing=False",
          "--workdir", str(workdir), *extra]


def _env(devices=1):
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
  env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  return env


def _run(cmd, devices=1, check=True, timeout=600):
  result = subprocess.run(cmd, cwd=ROOT, env=_env(devices), capture_output=True, text=True,
                          timeout=timeout)
  if check and result.returncode != 0:
    raise AssertionError(f"{cmd} failed ({result.returncode}):\n{result.stderr[-4000:]}")
  return result


def _export(workdir, out):
  _run([sys.executable, "-m", "ifirnn_jax.export", "--workdir", str(workdir), "--out", str(out)])
  return load_file(out)


def _assert_same(a, b, **tolerance):
  assert a.keys() == b.keys()
  for name in a:
    np.testing.assert_allclose(a[name], b[name], err_msg=name, **tolerance)


@pytest.fixture(scope="module")
def reference_run(dataset, tmp_path_factory):
  """An uninterrupted 1-device run of the tiny config: its exported weights and outputs."""
  workdir = tmp_path_factory.mktemp("reference")
  result = _run(_train_cmd(dataset, workdir, "--config.num_train_steps=6"))
  return workdir, _export(workdir, workdir / "w.safetensors"), result


def test_tiny_run_writes_checkpoints_metrics_and_results(reference_run):
  workdir, weights, result = reference_run
  assert (workdir / "config.json").is_file()
  recorded = json.loads((workdir / "config.json").read_text())
  assert recorded["model"]["name"] == "C2H2"
  assert recorded["clip_sampler_version"] == 2  # the stream of its batches
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["4", "6"]  # keep 2
  assert len(list((workdir / "best").iterdir())) == 1
  results = json.loads((workdir / "eval" / "results.json").read_text())
  assert results["frames"] > 0 and np.isfinite(results["psnr"])
  assert (workdir / "before_after.png").is_file()
  assert "blurry input" in result.stdout and "PSNR" in result.stdout
  assert list(workdir.glob("events.out.tfevents*")), "no TensorBoard events"
  assert weights["cells.1.F_L.2.weight"].shape == (3, 6, 5, 5)  # [out, n1, k, k]
  log = result.stderr
  assert "Training C2H2 for 6 steps" in log
  # One steps/s per report (log_every_steps is 1 here): no second progress reporter.
  assert log.count("steps_per_sec") == 6, log[-3000:]


def test_a_finished_run_says_so_and_only_evaluates(dataset, reference_run, tmp_path):
  import shutil
  workdir = shutil.copytree(reference_run[0], tmp_path / "finished")
  result = _run(_train_cmd(dataset, workdir, "--config.num_train_steps=6"))
  assert "already finished its 6 steps: not training, only evaluating" in result.stderr
  assert "Training C2H2" not in result.stderr
  assert "steps_per_sec" not in result.stderr


def test_one_and_four_devices_reach_the_same_parameters(dataset, reference_run, tmp_path):
  _, single, _ = reference_run
  workdir = tmp_path / "two_devices"  # the tiny config's batch of 2, one clip per device
  _run(_train_cmd(dataset, workdir, "--config.num_train_steps=6"), devices=2)
  _assert_same(single, _export(workdir, tmp_path / "w.safetensors"), rtol=2e-4, atol=2e-6)

  workdir4 = tmp_path / "four_devices"
  ref4 = tmp_path / "ref4"
  _run(_train_cmd(dataset, ref4, "--config.num_train_steps=4", "--config.batch_size=4"))
  _run(_train_cmd(dataset, workdir4, "--config.num_train_steps=4", "--config.batch_size=4"),
       devices=4)
  _assert_same(_export(ref4, tmp_path / "r4.safetensors"),
               _export(workdir4, tmp_path / "w4.safetensors"), rtol=2e-4, atol=2e-6)


def test_two_processes_train_together_and_agree(dataset, reference_run, tmp_path):
  _, single, _ = reference_run
  workdir = tmp_path / "two"
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  procs = [subprocess.Popen(
      _train_cmd(dataset, workdir, "--config.num_train_steps=6",
                 "--coordinator_address", f"127.0.0.1:{port}", "--num_processes", "2",
                 "--process_id", str(i)),
      cwd=ROOT, env=_env(1), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for i in range(2)]
  outputs = [p.communicate(timeout=600) for p in procs]
  for p, (_, err) in zip(procs, outputs):
    assert p.returncode == 0, err[-4000:]
  assert "blurry input" in outputs[0][0] and "blurry input" not in outputs[1][0]
  _assert_same(single, _export(workdir, tmp_path / "w.safetensors"), rtol=2e-4, atol=2e-6)


def test_a_refused_workdir_stops_every_process_of_a_run(dataset, tmp_path):
  """Process 0 finds the workdir locked by a live process: both processes exit 2
  (process 1 learns the verdict instead of waiting in a barrier), nothing written."""
  workdir = tmp_path / "held"
  holder = subprocess.Popen(
      [sys.executable, "-c", "import sys; from ifirnn_jax.storage import workdir; "
       f"workdir.claim({str(workdir)!r}); print('held', flush=True); sys.stdin.read()"],
      cwd=ROOT, env=_env(1), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    with socket.socket() as s:
      s.bind(("127.0.0.1", 0))
      port = s.getsockname()[1]
    procs = [subprocess.Popen(
        _train_cmd(dataset, workdir, "--coordinator_address", f"127.0.0.1:{port}",
                   "--num_processes", "2", "--process_id", str(i)),
        cwd=ROOT, env=_env(1), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
  finally:
    holder.kill()
    holder.wait()
  for p, (_, err) in zip(procs, outputs):
    assert p.returncode == 2, err[-3000:]
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1, err
    assert "Traceback" not in err
  assert f"in use by training process {holder.pid} " in outputs[0][1]
  assert sorted(p.name for p in workdir.iterdir()) == ["workdir.lock"]


def _two_device_env():
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
  env.pop("XLA_FLAGS", None)  # no forced device count: the config decides
  return env


TWO_DEVICES = ("--config.num_train_steps=6", "--config.cpu_devices=2")


@pytest.fixture(scope="module")
def two_device_run(dataset, tmp_path_factory):
  """An uninterrupted run of the tiny config over 2 CPU devices of one process."""
  workdir = tmp_path_factory.mktemp("two_devices")
  result = subprocess.run(_train_cmd(dataset, workdir, *TWO_DEVICES), cwd=ROOT,
                          env=_two_device_env(), capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-4000:]
  return workdir, _export(workdir, workdir / "w.safetensors"), result


def test_one_process_over_two_single_core_cpu_devices_trains_like_one_device(
    reference_run, two_device_run):
  """config.cpu_devices (the default 0 gives this on a 2-core machine): the batch split
  over 2 CPU devices of one process, each step compiled single-threaded."""
  _, single, _ = reference_run
  _, split, result = two_device_run
  assert "2 devices on 1 processes (CPU: one core each)" in result.stderr
  _assert_same(single, split, rtol=2e-4, atol=2e-6)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="pins one process per core")
def test_cpu_processes_launcher_trains_like_one_process(dataset, reference_run, tmp_path):
  _, single, _ = reference_run
  workdir = tmp_path / "launched"
  launcher = ["bash", "launch/cpu_processes.sh", "configs/demo.py:tiny", str(workdir)]
  env = dict(_env(1), PYTHON=sys.executable)
  result = subprocess.run(
      launcher + ["2", "--config.model.name=C2H2", f"--config.data.root={dataset}",
                  "--config.data.make_default_if_missing=False", "--config.num_train_steps=6"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-4000:]
  assert result.stdout.count("blurry input") == 1  # the table: process 0 only
  _assert_same(single, _export(workdir, tmp_path / "w.safetensors"), rtol=2e-4, atol=2e-6)
  for bad in ("0", "x", "4096"):
    result = subprocess.run(launcher + [bad], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and "NUM_PROCESSES must be 1 to" in result.stderr, bad


def _kill_after_first_checkpoint_then_resume(cmd, workdir, env):
  """Runs `cmd`, SIGKILLs it once checkpoint 2 exists, runs it again to the end."""
  proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  deadline = time.time() + 300
  while time.time() < deadline and not (workdir / "checkpoints" / "2").is_dir():
    if proc.poll() is not None:
      break
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert (workdir / "checkpoints" / "2").is_dir(), "the run never wrote its first checkpoint"
  assert not (workdir / "checkpoints" / "6").exists(), "killed too late to test resume"
  result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-4000:]
  assert "Resumed" in result.stderr


def test_sigkill_then_restart_reaches_exactly_the_same_weights(dataset, reference_run, tmp_path):
  _, single, _ = reference_run
  workdir = tmp_path / "killed"
  _kill_after_first_checkpoint_then_resume(
      _train_cmd(dataset, workdir, "--config.num_train_steps=6"), workdir, _env(1))
  _assert_same(single, _export(workdir, tmp_path / "w.safetensors"), rtol=0, atol=0)


@pytest.mark.slow
def test_sigkill_then_restart_over_two_cpu_devices_is_bit_exact(dataset, two_device_run,
                                                               tmp_path):
  """The same over 2 CPU devices (batches prefetched onto both, the loop running ahead)."""
  _, split, _ = two_device_run
  workdir = tmp_path / "killed"
  _kill_after_first_checkpoint_then_resume(_train_cmd(dataset, workdir, *TWO_DEVICES),
                                           workdir, _two_device_env())
  _assert_same(split, _export(workdir, tmp_path / "w.safetensors"), rtol=0, atol=0)


def test_non_finite_loss_stops_with_a_message_and_keeps_the_checkpoint(dataset, tmp_path):
  workdir = tmp_path / "nan"
  result = _run(_train_cmd(dataset, workdir, "--config.num_train_steps=6",
                           "--config.learning_rate=1e30"), check=False)
  assert result.returncode == 2, result.stderr[-3000:]
  assert "non-finite loss" in result.stderr
  assert "Traceback" not in result.stderr
  assert "(step None)" not in result.stderr
  assert ("No checkpoint was saved before it" in result.stderr
          or "The last good checkpoint (step " in result.stderr)


@pytest.mark.parametrize("flag,field", [
    ("--config.model.name=C3H1", "config.model.name"),
    ("--config.data.root=/no/such/folder", "config.data.root"),
    ("--config.model.n1=0", "config.model.n1"),
    ("--config.data.layout=nope", "config.data.layout"),
    ("--config.cpu_devices=-1", "config.cpu_devices"),
    ("--config.cpu_devices=3", "config.cpu_devices")])  # the tiny batch is 2
def test_bad_config_fails_before_compiling_and_names_the_field(dataset, tmp_path, flag, field):
  result = _run(_train_cmd(dataset, tmp_path / "bad", flag), check=False, timeout=120)
  assert result.returncode == 2
  assert field in result.stderr and "Traceback" not in result.stderr
  # One message: no TensorFlow start-up lines (data_pipeline's defaults) before it, and no
  # restart notice (the command runs in the process it was started in).
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert len(lines) == 1 and lines[0].startswith("error: config.") and field in lines[0], \
      result.stderr
  assert not (tmp_path / "bad" / "checkpoints").exists()


def test_load_checkpoint_returns_a_usable_model(reference_run):
  import ifirnn_jax as ifr
  workdir, weights, _ = reference_run
  model, params = ifr.load_checkpoint(workdir)
  assert model.name == "C2H2"
  out = model.deblur(params, np.zeros((2, 10, 14, 3), np.float32))
  assert out.shape == (2, 10, 14, 3)
  state = ifr.to_torch_state_dict(params)
  for name in weights:
    np.testing.assert_array_equal(state[name], weights[name])
  with pytest.raises(ifr.CheckpointError, match="no checkpoint at step 3"):
    ifr.load_checkpoint(workdir, step=3)


def test_demo_config_makes_its_embedded_data_and_trains(tmp_path):
  """The README's main command, at the tiny size: data made on the fly, table printed."""
  root = tmp_path / "default"
  result = _run([sys.executable, "-m", "ifirnn_jax.train", "--config", "configs/demo.py:tiny",
                 f"--config.data.root={root}", "--workdir", str(tmp_path / "demo")])
  assert (root / "default_data.json").is_file()  # made by the run
  assert "blurry input" in result.stdout and "gain" in result.stdout
  assert (tmp_path / "demo" / "before_after.png").is_file()
