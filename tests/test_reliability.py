"""Issue 24's failures, in-process: what --overwrite may replace, SIGTERM, checkpoints
that are damaged, full or of another model, and the smaller silent cases."""

import argparse
import errno
import os
import signal
import struct
import zlib
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import ifirnn_jax as ifr
from data_pipeline import image_io, layouts, synthesize
from data_pipeline.safe_io import files, outputs
from data_pipeline.commandline import termination
from data_pipeline.errors import DataError
from data_pipeline.video import FrameSink, open_frames
from ifirnn_jax import deblur, evaluate
from ifirnn_jax.storage import checkpoint
from ifirnn_jax.evaluation import protocol, reports
from tiny_models import tiny_params

TINY = dict(cells=1, iterations=1, n1=4, n2=4, n3=4, nh=4, num_resblocks=1)


def _frames(count, height=16, width=24, seed=0):
  rng = np.random.default_rng(seed)
  return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def _write_video(path, count=6):
  with FrameSink(path, fps=10) as sink:
    for frame in _frames(count):
      sink.write(frame)
  return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  root = tmp_path_factory.mktemp("tiny")
  model = ifr.IFIRNN(**TINY)
  params = tiny_params(model)
  return dict(model=model, params=params,
              weights=ifr.save_weights(params, root / "tiny.safetensors", model=model))


# ----------------------------------------------------------------------------- item 1
def test_deblur_refuses_an_output_folder_that_holds_the_input(tmp_path, tiny, capsys):
  video = _write_video(tmp_path / "p" / "video.mp4")
  (tmp_path / "p" / "notes.txt").write_text("mine")
  before = video.read_bytes()
  for output in (tmp_path / "p", tmp_path):
    status = deblur.main(["--input", str(video), "--output", str(output),
                          "--weights", str(tiny["weights"]), "--overwrite"])
    err = capsys.readouterr().err
    assert status == 2 and "holds the input" in err, err
  assert video.read_bytes() == before and (tmp_path / "p" / "notes.txt").read_text() == "mine"


def test_the_input_through_a_symlink_is_refused(tmp_path):
  (tmp_path / "data").mkdir()
  os.symlink(tmp_path / "data", tmp_path / "link")
  with pytest.raises(DataError, match="holds the input"):
    outputs.check_not_input(tmp_path / "link", [tmp_path / "data" / "clip.mp4"])
  with pytest.raises(DataError, match="is the input"):
    outputs.check_not_input(tmp_path / "link" / "clip.mp4", [tmp_path / "data" / "clip.mp4"])
  outputs.check_not_input(tmp_path / "out", [tmp_path / "data" / "clip.mp4"])  # unrelated


def test_overwrite_replaces_only_a_folder_of_frames(tmp_path):
  folder = tmp_path / "out"
  with FrameSink(folder) as sink:
    sink.write(_frames(1)[0])
  with FrameSink(folder, overwrite=True) as sink:  # what a sink wrote: replaced
    sink.write(_frames(2)[1])
  (folder / "holiday.jpg").write_bytes(b"irreplaceable")
  with pytest.raises(DataError, match="holiday.jpg would be lost"):
    FrameSink(folder, overwrite=True)
  assert (folder / "holiday.jpg").read_bytes() == b"irreplaceable"


def test_synthesize_refuses_to_write_over_its_frames(tmp_path, capsys):
  source = tmp_path / "X"
  for seed, name in enumerate(("a", "b")):
    (source / name).mkdir(parents=True)
    for i, frame in enumerate(_frames(3, seed=seed)):
      image_io.write_image(source / name / f"{i:06d}.png", frame)
  before = {p: p.read_bytes() for p in source.rglob("*") if p.is_file()}
  for out in (source, tmp_path):
    status = synthesize.main(["--frames", str(source), "--average", "3", "--out", str(out),
                              "--overwrite"])
    assert status == 2 and "the input" in capsys.readouterr().err
  assert {p: p.read_bytes() for p in source.rglob("*") if p.is_file()} == before


def test_synthesize_read_only_out_is_one_error(tmp_path, monkeypatch, capsys):
  source = tmp_path / "seq"
  source.mkdir()
  for i, frame in enumerate(_frames(3)):
    image_io.write_image(source / f"{i:06d}.png", frame)

  def refuse(*args, **kwargs):
    raise PermissionError(errno.EACCES, "Permission denied")
  monkeypatch.setattr(files, "make_partial_folder", refuse)
  status = synthesize.main(["--frames", str(source), "--average", "3",
                            "--out", str(tmp_path / "out")])
  err = capsys.readouterr().err
  assert status == 2 and err.startswith("error: output folder") and "Permission denied" in err


# ----------------------------------------------------------------------------- item 5
def test_stale_partial_files_of_the_same_output_are_removed(tmp_path):
  import subprocess
  gone = subprocess.Popen(["true"])
  gone.wait()  # a process that was and is no more: its leftovers are stale
  stale = tmp_path / f".out.mp4.partial-{gone.pid}-abc123.mp4"
  stale.write_bytes(b"x" * 100)
  other = tmp_path / f".other.mp4.partial-{gone.pid}-abc123.mp4"
  other.write_bytes(b"y")
  _write_video(tmp_path / "out.mp4", count=2)
  assert not stale.exists() and other.exists()
  assert sorted(p.name for p in tmp_path.iterdir()) == [other.name, "out.mp4"]


def test_sigterm_in_deblur_leaves_no_partial_file(tmp_path, tiny, monkeypatch, capsys):
  video = _write_video(tmp_path / "in.mp4", count=6)
  real = deblur.deblur_frames

  def terminated_after_two(*args, **kwargs):
    for done, out in enumerate(real(*args, **kwargs), start=1):
      if done == 3:
        os.kill(os.getpid(), signal.SIGTERM)
      yield out
  monkeypatch.setattr(deblur, "deblur_frames", terminated_after_two)
  previous = signal.getsignal(signal.SIGTERM)
  status = deblur.main(["--input", str(video), "--output", str(tmp_path / "out.mp4"),
                        "--weights", str(tiny["weights"])])
  err = capsys.readouterr().err
  assert status == 143 and "terminated (SIGTERM); no output written" in err
  assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]
  assert signal.getsignal(signal.SIGTERM) == previous


def test_run_command_gives_every_commands_exit_status(tmp_path, capsys):
  """One policy: bad input 2 (an OSError named by its file), a returned status as is,
  Ctrl-C 130, a stopped run's own message with SIGTERM's 143."""
  missing = tmp_path / "missing.txt"
  cases = [(lambda: open(missing), 2, f"error: {missing}: {os.strerror(errno.ENOENT)}"),
           (lambda: (_ for _ in ()).throw(termination.UsageError("--steps  must\n be >= 1")),
            2, "error: --steps must be >= 1"),
           (lambda: 3, 3, ""),
           (lambda: (_ for _ in ()).throw(KeyboardInterrupt()), 130, "interrupted; left"),
           (lambda: (_ for _ in ()).throw(termination.Stopped(termination.Terminated(), "at 4")),
            143, "terminated (SIGTERM): at 4")]
  for work, status, line in cases:
    assert termination.run_command(work, (OSError,), "left") == status
    assert capsys.readouterr().err.strip() == line


def test_sigterm_raises_terminated_only_inside_the_block():
  with pytest.raises(termination.Terminated):
    with termination.sigterm_as_interrupt():
      os.kill(os.getpid(), signal.SIGTERM)  # the handler runs before the next line
      pytest.fail("SIGTERM did not raise")
  assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


# ----------------------------------------------------------------------------- item 4
def _saved_run(workdir, model, params, steps=(1, 2)):
  runs = checkpoint.RunCheckpoints(workdir, keep=5)
  for step in steps:
    runs.save(step, params, {"step": jnp.int32(step)}, model)
  runs.wait()
  runs.close()
  return workdir


def _damage(workdir, step):
  for f in (workdir / "checkpoints" / str(step) / "params").rglob("*"):
    if f.is_file() and "ocdbt.process_0" in str(f) and f.parent.name == "d":
      with open(f, "r+b") as handle:
        handle.truncate(5)


def test_damaged_checkpoint_is_one_checkpoint_error(tmp_path, tiny):
  workdir = _saved_run(tmp_path / "w", tiny["model"], tiny["params"])
  _damage(workdir, 2)
  with pytest.raises(ifr.CheckpointError, match=r"checkpoints/2: .*damaged"):
    ifr.load_checkpoint(workdir)
  model, _ = ifr.load_checkpoint(workdir, 1)
  assert model.shape_fields() == tiny["model"].shape_fields()


def test_training_resume_falls_back_past_a_damaged_checkpoint(tmp_path, tiny, caplog):
  workdir = _saved_run(tmp_path / "w", tiny["model"], tiny["params"])
  _damage(workdir, 2)
  runs = checkpoint.RunCheckpoints(workdir, keep=5)
  abstract = jax_abstract(tiny["params"])
  step, params, train = runs.restore_latest(tiny["model"], abstract,
                                            {"step": jax_abstract(jnp.int32(0))})
  runs.close()
  assert step == 1 and int(train["step"]) == 1
  np.testing.assert_array_equal(params["cells_0"]["F_B_0"]["kernel"],
                                tiny["params"]["cells_0"]["F_B_0"]["kernel"])
  assert (workdir / "damaged_checkpoints" / "2").is_dir()  # kept, set aside
  assert not (workdir / "checkpoints" / "2").exists()


def jax_abstract(tree):
  import jax
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), tree)


def test_resuming_another_model_is_refused(tmp_path, tiny):
  workdir = _saved_run(tmp_path / "w", tiny["model"], tiny["params"], steps=(1,))
  other = ifr.IFIRNN(**dict(TINY, nh=6))
  runs = checkpoint.RunCheckpoints(workdir, keep=5)
  with pytest.raises(ifr.CheckpointError, match=r"another model \(nh 4 \(config: 6\)\)"):
    runs.restore_latest(other, jax_abstract(tiny_params(other)),
                        {"step": jax_abstract(jnp.int32(0))})
  runs.close()
  assert (workdir / "checkpoints" / "1").is_dir()


def test_disk_full_during_a_save_is_one_checkpoint_error(tmp_path, tiny, monkeypatch):
  runs = checkpoint.RunCheckpoints(tmp_path / "w", keep=5)

  def full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
  monkeypatch.setattr(runs.periodic, "save", full)
  with pytest.raises(ifr.CheckpointError, match="cannot save the checkpoint of step 3 "
                     r"\(No space left on device\)"):
    runs.save(3, tiny["params"], {"step": jnp.int32(3)}, tiny["model"])
  runs.close()


# ----------------------------------------------------------------------------- item 8
def _png16(path, image):
  """A 16-bit PNG (Pillow cannot write 16-bit RGB)."""
  height, width, channels = image.shape
  raw = b"".join(b"\0" + image[y].astype(">u2").tobytes() for y in range(height))

  def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
  header = struct.pack(">IIBBBBB", width, height, 16, {1: 0, 3: 2, 4: 6}[channels], 0, 0, 0)
  path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) +
                   chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
  return path


@pytest.mark.parametrize("channels", [3, 4])
def test_16_bit_colour_pngs_are_refused(tmp_path, channels):
  image = np.full((4, 5, channels), 65535, np.uint16)
  image[..., 0] = 300  # high byte 1: a cut to 8 bits would read 1
  path = _png16(tmp_path / "deep.png", image)
  for read in (image_io.read_image, image_io.read_image_size):
    with pytest.raises(DataError, match=r"deep.png: image is 16-bit"):
      read(path)


def test_truncated_mkv_is_refused(tmp_path):
  video = _write_video(tmp_path / "clip.mkv", count=20)
  data = video.read_bytes()
  cut = tmp_path / "cut.mkv"
  cut.write_bytes(data[:len(data) // 2])
  with pytest.raises(DataError, match="cut.mkv: video file is truncated"):
    open_frames(cut)


def test_evaluate_warns_of_an_unscored_sequence(tmp_path, tiny, capsys):
  root = tmp_path / "data"
  for name, length in (("long", 7), ("short", 3)):
    for folder in ("blur", "sharp"):
      (root / "test" / name / folder).mkdir(parents=True)
      for i, frame in enumerate(_frames(length, seed=len(name))):
        image_io.write_image(root / "test" / name / folder / f"{i:06d}.png", frame)
  sequences = layouts.find_sequences(root, "gopro", "test", blur_dir="blur")
  summary = protocol.evaluate_sequences(tiny["model"], tiny["params"], sequences,
                                          skip_first=2, skip_last=1)
  assert [r["sequence"] for r in summary.sequences] == ["long"]
  assert summary.unscored == [("short", 3)]
  warnings = reports.unscored_warnings(summary, skip_first=2, skip_last=1)
  assert len(warnings) == 1 and warnings[0].startswith("warning: sequence short not scored")
  assert "3 frames" in warnings[0]
  with pytest.raises(protocol.EvalError, match="no frame was scored"):
    protocol.evaluate_sequences(tiny["model"], tiny["params"], sequences[1:],
                                  skip_first=2, skip_last=1)
  # The command prints the warning and scores the rest.
  status = evaluate.main(["--weights", str(tiny["weights"]), "--data", str(root),
                          "--skip-first", "2", "--skip-last", "1", "--blur-dir", "blur",
                          "--out", str(tmp_path / "out")])
  err = capsys.readouterr().err
  assert status == 0, err
  assert [line for line in err.splitlines() if line.startswith("warning:")] == warnings


def test_weight_file_with_a_bad_cell_name_is_a_weights_error(tmp_path, tiny):
  state = load_file(tiny["weights"])
  state["cells.x.weight"] = np.zeros(3, np.float32)
  path = tmp_path / "bad_name.safetensors"
  save_file(state, path)
  with pytest.raises(ifr.WeightsError, match=r"bad_name.safetensors: .*cells.x.weight"):
    ifr.load_model(path)


@pytest.mark.parametrize("described", ["[1, 2]", "3", '"C2H3"'])
def test_weight_file_model_metadata_must_be_an_object(tmp_path, tiny, described):
  path = tmp_path / "bad_meta.safetensors"
  save_file(load_file(tiny["weights"]), path,
            metadata={"format": "ifirnn-jax/1", "model": described})
  with pytest.raises(ifr.WeightsError, match="bad_meta.safetensors: metadata 'model' is not "
                     "a JSON object"):
    ifr.load_model(path)


# ----------------------------------------------------------------------------- issue 22
def test_evaluate_default_out_is_apart_from_trainings_eval():
  args = argparse.Namespace(workdir="runs/c2h3", weights=None, data="/d/GOPRO_Large/",
                            split="test")
  assert evaluate.default_out(args) == Path("runs/c2h3/evaluations/GOPRO_Large_test")
  assert evaluate.default_out(args) != Path("runs/c2h3/eval")  # training's own folder
  args = argparse.Namespace(workdir=None, weights="w/C2H3.safetensors", data="dvd",
                            split="valid")
  assert evaluate.default_out(args) == Path("evaluations/C2H3_dvd_valid")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupting_training_is_a_short_message(tmp_path, signum):
  import subprocess
  import sys
  import time
  root = tmp_path / "gopro"
  for split, count in (("train", 2), ("test", 1)):
    for s in range(count):
      for folder in ("blur", "blur_gamma", "sharp"):
        (root / split / f"seq{s}" / folder).mkdir(parents=True)
        for t, frame in enumerate(_frames(6, height=24, width=32, seed=s)):
          image_io.write_image(root / split / f"seq{s}" / folder / f"{t:06d}.png", frame)
  workdir = tmp_path / "w"
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             PYTHONPATH=str(Path(__file__).resolve().parents[1]), PYTHONUNBUFFERED="1")
  process = subprocess.Popen(
      [sys.executable, "-m", "ifirnn_jax.train", "--config", "configs/demo.py:tiny",
       f"--config.data.root={root}", "--config.data.make_default_if_missing=False",
       "--config.num_train_steps=100000", "--config.checkpoint_every_steps=1",
       "--config.eval_every_steps=100000", "--workdir", str(workdir)],
      cwd=Path(__file__).resolve().parents[1], env=env, stderr=subprocess.PIPE, text=True)
  deadline = time.monotonic() + 300
  while not (workdir / "checkpoints" / "2").is_dir() and time.monotonic() < deadline:
    time.sleep(0.2)  # the first checkpoints are written: training runs
  process.send_signal(signum)
  _, err = process.communicate(timeout=120)
  assert process.returncode == 128 + signum, err[-3000:]
  assert "Traceback" not in err, err[-3000:]
  last = err.strip().splitlines()[-1]
  assert last.startswith("interrupted: " if signum == signal.SIGINT else "terminated (SIGTERM): ")
  assert "run the same command to resume" in last
  step = int(last.split("checkpoint is step ")[1].split()[0])
  assert (workdir / "checkpoints" / str(step)).is_dir()  # the step it names is complete
  assert not list((workdir / "checkpoints").glob("*tmp*"))  # no half-written save left
