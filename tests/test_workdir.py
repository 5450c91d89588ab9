"""A run owns its workdir (issue 32): the lock, the run's config, foreign folders, bounds
checked before anything is written, failures as one error naming the step."""

import errno
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import pytest

import ifirnn_jax as ifr
from data_pipeline import clip_sampler
from data_pipeline.commandline import termination
from data_pipeline.errors import DataError
from data_pipeline.safe_io.files import write_json_atomic
from ifirnn_jax import train
from ifirnn_jax.storage import checkpoint, workdir
from ifirnn_jax.training import default_config, writers
import data_trees
from tiny_models import tiny_params

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(cells=1, iterations=1, n1=4, n2=4, n3=4, nh=4, num_resblocks=1)


@pytest.fixture(scope="module")
def gopro(tmp_path_factory):
  return data_trees.gopro_tree(tmp_path_factory.mktemp("gopro"))


def _config(root, **changes):
  """The demo's tiny config on the 24x32 GOPRO tree, numpy loader, one device."""
  import importlib.util
  spec = importlib.util.spec_from_file_location("demo_config", ROOT / "configs" / "demo.py")
  demo = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(demo)
  config = demo.get_config("tiny")
  config.data.update(root=str(root), make_default_if_missing=False, blur_dir="blur",
                     loader="numpy")
  config.update(dict(dict(cpu_devices=1, num_train_steps=4), **changes))
  return config


def _hold_lock(path):
  """A real process that takes the workdir's lock and waits: (process, its PID)."""
  child = subprocess.Popen(
      [sys.executable, "-c", "import sys; from ifirnn_jax.storage import workdir; "
       f"workdir.claim({str(path)!r}); print('held', flush=True); sys.stdin.read()"],
      cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
  assert child.stdout.readline().strip() == "held"
  return child


def test_a_second_run_is_refused_while_the_first_lives_and_not_after_kill_9(tmp_path, gopro):
  """The command's side (one error line, status 2, on every process): test_train.py."""
  work = tmp_path / "w"
  child = _hold_lock(work)
  try:
    with pytest.raises(workdir.WorkdirError) as refused:
      train.train_and_evaluate(_config(gopro), str(work))
    assert f"in use by training process {child.pid} " in str(refused.value)
    assert sorted(p.name for p in work.iterdir()) == [workdir.LOCK_FILE]  # nothing written
  finally:
    child.kill()  # SIGKILL: the kernel drops its lock
    child.wait()
  lock = workdir.claim(work)
  assert json.loads((work / workdir.LOCK_FILE).read_text())["pid"] == os.getpid()
  lock.release()


def test_a_filesystem_without_locks_is_one_warning(tmp_path, monkeypatch, caplog):
  def refuse(fd, operation):
    raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))
  monkeypatch.setattr(workdir.fcntl, "flock", refuse)
  with caplog.at_level(logging.WARNING):
    lock = workdir.claim(tmp_path / "nfs")
  assert lock.fd is None and (tmp_path / "nfs" / workdir.LOCK_FILE).is_file()
  assert [r for r in caplog.records if "refuses file locks" in r.getMessage()]


def _trained_workdir(path, config):
  """A workdir as a run leaves it: lock file, first config.json, a checkpoint step."""
  workdir.claim(path).release()
  write_json_atomic(path / "config.json", config.to_dict())
  (path / "checkpoints" / "2").mkdir(parents=True)
  return path


def test_a_resume_that_changes_what_is_trained_is_refused(tmp_path, gopro):
  work = _trained_workdir(tmp_path / "w", _config(gopro))
  first = (work / "config.json").read_bytes()
  changed = _config(gopro, batch_size=4, seed=1, learning_rate=0.5)
  with pytest.raises(workdir.WorkdirError) as refused:
    train.train_and_evaluate(changed, str(work))
  for field in ("batch_size 2 -> 4", "seed 0 -> 1", "learning_rate 0.001 -> 0.5"):
    assert field in str(refused.value)
  assert (work / "config.json").read_bytes() == first
  assert not (work / workdir.HISTORY_FILE).exists()
  assert sorted(p.name for p in work.iterdir()) == ["checkpoints", "config.json",
                                                    workdir.LOCK_FILE]


def test_a_workdir_of_the_older_clip_sampler_is_not_resumed_without_a_word(tmp_path, gopro):
  # Its config.json has no clip_sampler_version: its batches came from the sampler before.
  work = _trained_workdir(tmp_path / "w", _config(gopro))
  first = (work / "config.json").read_bytes()
  with pytest.raises(workdir.WorkdirError, match="clip_sampler_version None -> 2"):
    train.train_and_evaluate(_config(gopro), str(work))
  assert not (work / workdir.HISTORY_FILE).exists()
  record = train.recorded_config(_config(gopro))
  assert record["clip_sampler_version"] == clip_sampler.VERSION == 2
  changes = workdir.config_changes(work, record, allow_change=True)
  assert changes == {"clip_sampler_version": (None, 2)}
  workdir.record_config(work, record, changes, start_step=2)
  history = json.loads((work / workdir.HISTORY_FILE).read_text())
  assert history["changes"] == {"clip_sampler_version": [None, 2]}
  assert workdir.config_changes(work, record) == {}  # the next start: no change
  assert (work / "config.json").read_bytes() == first


def test_resumes_may_change_the_run_length_and_runtime_fields_and_all_is_recorded(
    tmp_path, gopro):
  work = _trained_workdir(tmp_path / "w", _config(gopro))
  first = (work / "config.json").read_bytes()
  longer = _config(gopro, num_train_steps=8)
  longer.data.root = str(gopro) + "/"
  longer.model.scan_unroll = 2
  changes = workdir.config_changes(work, longer.to_dict())
  assert changes == {"data.root": (str(gopro), str(gopro) + "/"),
                     "model.scan_unroll": (0, 2), "num_train_steps": (4, 8)}
  workdir.record_config(work, longer.to_dict(), changes, start_step=4)
  # An explicit flag lets the seed change; the next start compares with that.
  reseeded = _config(gopro, num_train_steps=8, seed=5)
  with pytest.raises(workdir.WorkdirError, match="seed 0 -> 5"):
    workdir.config_changes(work, reseeded.to_dict())
  changes = workdir.config_changes(work, reseeded.to_dict(), allow_change=True)
  workdir.record_config(work, reseeded.to_dict(), changes, start_step=8)
  assert workdir.config_changes(work, reseeded.to_dict()) == {}
  assert (work / "config.json").read_bytes() == first  # the first run's, kept
  history = [json.loads(line) for line in (work / workdir.HISTORY_FILE).read_text()
             .splitlines()]
  assert [h["start_step"] for h in history] == [4, 8]
  assert history[1]["changes"] == {"seed": [0, 5], "data.root": [str(gopro) + "/", str(gopro)],
                                   "model.scan_unroll": [2, 0]}


def test_a_folder_that_is_not_a_workdir_is_refused(tmp_path, gopro):
  mine = tmp_path / "results"
  (mine / "eval").mkdir(parents=True)
  (mine / "config.json").write_text('{"mine": 1}')
  (mine / "eval" / "results.json").write_text("{}")
  (mine / "before_after.png").write_bytes(b"png")
  with pytest.raises(workdir.WorkdirError, match="not a training workdir"):
    train.train_and_evaluate(_config(gopro), str(mine))
  assert (mine / "config.json").read_text() == '{"mine": 1}'
  assert sorted(p.name for p in mine.iterdir()) == ["before_after.png", "config.json", "eval"]
  # A run killed right after marking its workdir left only the lock file: a workdir.
  started = tmp_path / "started"
  workdir.claim(started).release()
  workdir.claim(started).release()
  # A workdir of an older version (config.json beside checkpoints/, no lock file) resumes.
  older = tmp_path / "older"
  (older / "checkpoints" / "2").mkdir(parents=True)
  (older / "config.json").write_text("{}")
  workdir.claim(older).release()


@pytest.mark.parametrize("changes,field", [
    (dict(model=dict(name="C1H65")), "config.model.name"),
    (dict(model=dict(num_resblocks=-1)), "config.model.num_resblocks"),
    (dict(model=dict(n1=2000)), "config.model.n1"),
    (dict(num_train_steps=0), "config.num_train_steps"),
    (dict(reg_lambda=float("nan")), "config.reg_lambda"),
    (dict(learning_rate=float("inf")), "config.learning_rate"),
    (dict(crop_size=64), "64x64 crop")])  # the frames are 24x32
def test_bad_configs_are_refused_before_the_workdir_exists(tmp_path, gopro, changes, field):
  config = _config(gopro)
  for key, value in changes.items():
    if isinstance(value, dict):
      config[key].update(value)
    else:
      config[key] = value
  with pytest.raises((default_config.ConfigError, DataError), match=field):
    train.train_and_evaluate(config, str(tmp_path / "w"))
  assert not (tmp_path / "w").exists()


def test_a_failed_save_names_its_step_and_the_last_complete_one(tmp_path, monkeypatch):
  model = ifr.IFIRNN(**TINY)
  params = tiny_params(model)
  runs = checkpoint.RunCheckpoints(tmp_path / "w", keep=5)
  runs.save(2, params, {"step": jnp.int32(2)}, model)
  runs.wait()
  runs.save(4, params, {"step": jnp.int32(4)}, model)

  def full():  # step 4's background write found the disk full
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
  monkeypatch.setattr(runs.periodic, "wait_until_finished", full)
  with pytest.raises(ifr.CheckpointError, match=r"step 4 \(No space left on device\); the "
                     "last complete checkpoint there is step 2"):
    runs.save(6, params, {"step": jnp.int32(6)}, model)
  monkeypatch.undo()
  runs.close()


def test_a_metrics_writer_thread_on_a_full_disk_is_one_write_error(tmp_path, capsys):
  writer = writers.create_writer(str(tmp_path), just_logging=False, use_tensorflow=False)
  inner = writer._writer._writer.file_writer.event_writer._ev_writer

  def full(*args):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
  inner.flush = inner.write_event = full  # what the logger thread calls
  writer.write_scalars(6, {"loss": 1.0})
  thread = writer._writer._writer.file_writer.event_writer._worker
  thread.join(timeout=10)
  with pytest.raises(writers.WriteError, match=r"step 8 \(No space left on device\)"):
    writer.write_scalars(8, {"loss": 1.0})
  assert "Traceback" not in capsys.readouterr().err
  # clu's writer (TensorFlow) raises its thread's error wrapped in an AsyncError.
  from clu import asynclib

  class Clu:
    def write_scalars(self, step, scalars):
      try:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
      except OSError as e:
        raise asynclib.AsyncError("Error occurred ASYNCHRONOUSLY.") from e
  with pytest.raises(writers.WriteError, match=r"step 3 \(No space left on device\)"):
    writers.Guarded(Clu(), str(tmp_path)).write_scalars(3, {"loss": 1.0})


def test_load_checkpoint_takes_numeric_steps_and_reads_past_a_removed_one(
    tmp_path, monkeypatch, caplog):
  import numpy as np
  model = ifr.IFIRNN(**TINY)
  params = tiny_params(model)
  runs = checkpoint.RunCheckpoints(tmp_path / "w", keep=5)
  for step in (2, 4):
    runs.save(step, params, {"step": jnp.int32(step)}, model)
  runs.wait()
  runs.close()
  for step in ("4", np.int64(4), 2):
    loaded, _ = ifr.load_checkpoint(tmp_path / "w", step=step)
    assert loaded.shape_fields() == model.shape_fields()
  assert ifr.load_checkpoint(tmp_path / "w", iterations=np.int64(2))[0].iterations == 2
  with pytest.raises(ifr.CheckpointError, match="step must be"):
    ifr.load_checkpoint(tmp_path / "w", step="latest")
  # Training saves step 6 and its keep_checkpoints removes step 4 while 4 is read.
  real = checkpoint._read

  def racing(manager, directory, step, overrides):
    if step == 4:
      runs = checkpoint.RunCheckpoints(tmp_path / "w", keep=5)
      runs.save(6, params, {"step": jnp.int32(6)}, model)
      runs.wait()
      runs.close()
      import shutil
      shutil.rmtree(directory / "4")
    return real(manager, directory, step, overrides)
  monkeypatch.setattr(checkpoint, "_read", racing)
  with caplog.at_level(logging.WARNING):
    loaded, got, read_step = checkpoint.read_checkpoint(tmp_path / "w")
  assert read_step == 6  # what evaluate records as the step it scored
  assert any("using checkpoint step 6" in r.getMessage() for r in caplog.records)
  assert "damaged" not in caplog.text
  # A step asked for by number is not swapped for another: the error says what happened.
  def removing(manager, directory, step, overrides):
    import shutil
    shutil.rmtree(directory / str(step))
    return real(manager, directory, step, overrides)
  monkeypatch.setattr(checkpoint, "_read", removing)
  with pytest.raises(ifr.CheckpointError, match=r"checkpoints/6: removed while being read.*"
                     r"\[2\]"):
    ifr.load_checkpoint(tmp_path / "w", step=6)


def test_damaged_checkpoint_messages_have_no_method_reprs():
  error = Exception("Encountered error while reading array index: (slice(0, 5, 1),). See "
                    "full TensorStore details: <bound method pybind11_detail_function_"
                    "record_v1_system_lib.<lambda> of <tensorstore...")
  assert checkpoint._reason(error) == ("Encountered error while reading array index: "
                                       "(slice(0, 5, 1),).")


def test_sigterm_in_the_final_evaluation_says_training_is_complete(tmp_path, gopro,
                                                                    monkeypatch, caplog):
  def stopped(*args, **kwargs):
    raise termination.Terminated()
  monkeypatch.setattr(train, "_final_evaluation", stopped)
  config = _config(gopro, log_every_steps=1, eval_every_steps=100)
  with caplog.at_level(logging.INFO):
    with pytest.raises(train.Interrupted, match="training is complete") as stopped_run:
      train.train_and_evaluate(config, str(tmp_path / "w"))
  assert isinstance(stopped_run.value.interrupt, termination.Terminated)
  assert sorted(p.name for p in (tmp_path / "w" / "checkpoints").iterdir()) == ["2", "4"]
  # The ETA is measured after the first (compiling) step: none at step 1.
  progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("step ")]
  assert progress[0] == "step 1/4 (25%)" and "ETA" in progress[1], progress
  # The lock went with the run.
  workdir.claim(tmp_path / "w").release()
