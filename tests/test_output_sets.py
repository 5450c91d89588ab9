"""Outputs are replaced whole or not at all, and only when asked (issue 32, item 4).

Each test reproduces a case (an existing output, a second run, a full disk, SIGTERM, a
dangling symlink) and checks the promise: what was there is kept byte for byte (or
replaced whole with --overwrite), nothing partial is left beside it, and the command
ends with one `error:` line and exit status 2. Concurrency uses real processes: a child
that holds a partial file while it lives, and one that watches a folder being replaced.
A full disk is simulated in-process (OSError ENOSPC, or what ffmpeg leaves behind).
"""

import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors import SafetensorError

import data_trees
import ifirnn_jax as ifr
from data_pipeline import image_io, synthesize, video
from data_pipeline.safe_io import files, outputs
from data_pipeline.errors import DataError
from data_pipeline.video import FrameSink, open_frames
from ifirnn_jax import deblur, evaluate, export
from ifirnn_jax.storage import checkpoint, weights
from ifirnn_jax.benchmark import cli as benchmark_cli
from tiny_models import tiny_params

TINY = dict(cells=1, iterations=1, n1=4, n2=4, n3=4, nh=4, num_resblocks=1)
SEQUENCES = ("GOPR0003", "GOPR0004")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  """A tiny model's weight file, a workdir with checkpoints at steps 1 and 2, and a
  GOPRO-layout test split of two 6-frame sequences."""
  root = tmp_path_factory.mktemp("sets")
  model = ifr.IFIRNN(**TINY)
  params = tiny_params(model)
  runs = checkpoint.RunCheckpoints(root / "run", keep=5)
  for step in (1, 2):
    runs.save(step, tiny_params(model, seed=step), {"step": jnp.int32(step)}, model)
  runs.wait()
  runs.close()
  data = data_trees.gopro_tree(root / "gopro", train=(), test=SEQUENCES)
  return dict(root=root, model=model, params=params, workdir=root / "run", data=data,
              weights=ifr.save_weights(params, root / "tiny.safetensors", model=model))


def _one_error(err: str) -> str:
  """The single `error:` line of a failed command (no traceback)."""
  errors = [line for line in err.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and "Traceback" not in err, err
  return errors[0]


def _snapshot(folder: Path) -> dict[str, bytes]:
  return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
          if p.is_file()}


def _hidden(folder: Path) -> list[str]:
  return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _evaluate(capsys, tiny, *args):
  status = evaluate.main(["--data", str(tiny["data"]), "--skip-first", "1", "--skip-last",
                          "1", *map(str, args)])
  captured = capsys.readouterr()
  return status, captured.out, captured.err


def _old_results(out: Path) -> dict[str, bytes]:
  out.mkdir(parents=True)
  for name in ("results.json", "results.csv", "frames.csv", "fig5_psnr_time.png"):
    (out / name).write_bytes(f"old {name}".encode())
  return _snapshot(out)


# ----------------------------------------------------------------------------- folders
_WATCHER = """
import os, sys
target = sys.argv[1]
print("ready", flush=True)
misses = looks = 0
while not os.path.exists(target + ".stop"):
  looks += 1
  if not os.path.isfile(os.path.join(target, "marker")):
    misses += 1
print(misses, looks)
"""


def _replace_while_watched(tmp_path: Path, rounds: int) -> tuple[int, int]:
  """(times a watching process found no folder at `target`, times it looked) while this
  process replaced `target` `rounds` times by a new folder holding the same marker."""
  target = tmp_path / "target"
  target.mkdir()
  (target / "marker").write_text("0")
  watcher = subprocess.Popen([sys.executable, "-c", _WATCHER, str(target)],
                             stdout=subprocess.PIPE, text=True)
  assert watcher.stdout.readline().strip() == "ready"
  for i in range(rounds):
    partial = files.make_partial_folder(target)
    (partial / "marker").write_text(str(i + 1))
    files.replace_folder(partial, target)
  Path(str(target) + ".stop").touch()
  misses, looks = map(int, watcher.communicate(timeout=30)[0].split())
  assert (target / "marker").read_text() == str(rounds)
  assert sorted(p.name for p in tmp_path.iterdir()) == ["target", "target.stop"]
  return misses, looks


def test_a_replaced_folder_is_never_missing_for_a_watching_process(tmp_path):
  (tmp_path / "a").mkdir()
  (tmp_path / "b").mkdir()
  if not files.renameat2(tmp_path / "a", tmp_path / "b", files.RENAME_EXCHANGE):
    pytest.skip("this system or filesystem has no renameat2(RENAME_EXCHANGE): "
                "replace_folder falls back to two renames (documented gap)")
  (tmp_path / "a").rmdir()
  (tmp_path / "b").rmdir()
  misses, looks = _replace_while_watched(tmp_path, rounds=300)
  assert looks > 300 and misses == 0


def test_renameat2_reports_errors_and_the_fallback_still_replaces(tmp_path, monkeypatch):
  with pytest.raises(FileNotFoundError):
    files.renameat2(tmp_path / "a", tmp_path / "b", files.RENAME_EXCHANGE)
  monkeypatch.setattr(files, "_renameat2_function", None)  # a system without renameat2
  (tmp_path / "out").mkdir()
  (tmp_path / "out" / "old").write_text("old")
  partial = files.make_partial_folder(tmp_path / "out")
  (partial / "new").write_text("new")
  files.replace_folder(partial, tmp_path / "out")
  assert _snapshot(tmp_path / "out") == {"new": b"new"} and _hidden(tmp_path) == []


@pytest.mark.parametrize("atomic", [True, False])
def test_rename_new_never_replaces(tmp_path, monkeypatch, atomic):
  if not atomic:
    monkeypatch.setattr(files, "_renameat2_function", None)
  for kind in ("file", "folder", "dangling symlink"):
    target = tmp_path / f"target_{kind.replace(' ', '_')}"
    if kind == "file":
      target.write_text("theirs")
    elif kind == "folder":
      target.mkdir()
    else:
      target.symlink_to(tmp_path / "nowhere")
    source = tmp_path / "source"
    source.write_text("mine")
    with pytest.raises(FileExistsError):
      files.rename_new(source, target)
    assert source.read_text() == "mine" and os.path.lexists(target)
    source.unlink()
  (tmp_path / "a").write_text("a")
  files.rename_new(tmp_path / "a", tmp_path / "b")
  assert (tmp_path / "b").read_text() == "a" and not (tmp_path / "a").exists()


# ----------------------------------------------------------------------------- partials
_HOLDER = """
import sys, tempfile, time
from data_pipeline.safe_io import files
fd, path = tempfile.mkstemp(prefix=files.partial_prefix(sys.argv[1]), suffix=".mp4",
                            dir=sys.argv[2])
print(path, flush=True)
time.sleep(120)
"""


def test_a_live_process_partial_file_is_kept_and_removed_once_it_is_gone(tmp_path):
  out = tmp_path / "out.mp4"
  holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(out), str(tmp_path)],
                            stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
  try:
    theirs = Path(holder.stdout.readline().strip())
    assert theirs.name.startswith(f".out.mp4.partial-{holder.pid}-")
    theirs.write_bytes(b"another run's frames")
    no_pid = tmp_path / ".out.mp4.partial-abc.mp4"  # no PID: whose it is is unknown
    no_pid.write_bytes(b"?")
    with FrameSink(out, fps=5) as sink:  # a second run to the same output
      sink.write(np.zeros((8, 8, 3), np.uint8))
    assert theirs.read_bytes() == b"another run's frames" and no_pid.exists()
  finally:
    holder.kill()
    holder.wait()
  with FrameSink(tmp_path / "out.mp4", fps=5, overwrite=True) as sink:
    sink.write(np.zeros((8, 8, 3), np.uint8))
  assert not theirs.exists() and no_pid.exists()
  assert sorted(p.name for p in tmp_path.iterdir()) == [no_pid.name, "out.mp4"]


# ----------------------------------------------------------------------------- deblur
def _video(path: Path, frames: int = 3, audio: str | None = None) -> Path:
  """A 32x24 H.264 test video (with a sine audio stream of codec `audio`), made by ffmpeg."""
  command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-v", "error", "-y", "-f",
             "lavfi", "-i", f"testsrc=size=32x24:rate=10:duration={frames / 10}"]
  if audio:
    command += ["-f", "lavfi", "-i", "sine=duration=2", "-c:a", audio]
  subprocess.run(command + ["-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)], check=True)
  return path


def _notes(err: str) -> list[str]:
  return [line for line in err.splitlines() if line.startswith("note:")]


def test_a_second_run_keeps_an_output_that_appeared_while_it_wrote(tmp_path, monkeypatch):
  for atomic in (True, False):
    if not atomic:
      monkeypatch.setattr(files, "_renameat2_function", None)
    for name in (f"clip_{atomic}.mp4", f"frames_{atomic}"):
      out = tmp_path / name
      sink = FrameSink(out, fps=5)
      sink.write(np.zeros((8, 8, 3), np.uint8))
      if out.suffix:  # the first run finished meanwhile
        out.write_bytes(b"first run's video")
      else:
        out.mkdir()
        (out / "000000.png").write_bytes(b"first run's frame")
      with pytest.raises(DataError, match="appeared while this run was writing"):
        sink.close()
      content = out.read_bytes() if out.is_file() else (out / "000000.png").read_bytes()
      assert content.startswith(b"first run's")
  assert _hidden(tmp_path) == []


def test_deblur_refuses_a_dangling_symlink_and_copies_audio(tiny, tmp_path, capsys):
  clip = _video(tmp_path / "with_audio.mp4", audio="aac")
  link = tmp_path / "out.mp4"
  link.symlink_to(tmp_path / "gone.mp4")
  args = ["--input", str(clip), "--output", str(link), "--weights", str(tiny["weights"])]
  assert deblur.main(args) == 2
  line = _one_error(capsys.readouterr().err)
  assert str(link) in line and "--overwrite" in line
  assert link.is_symlink() and not (tmp_path / "gone.mp4").exists()
  assert deblur.main(args + ["--overwrite"]) == 0
  assert _notes(capsys.readouterr().err) == []  # nothing dropped
  assert not link.is_symlink() and open_frames(link).num_frames == 3
  assert video.probe_streams(link) == ["video", "audio"]
  # A frame folder cannot hold the audio: said once.
  assert deblur.main(["--input", str(clip), "--output", str(tmp_path / "frames"),
                      "--weights", str(tiny["weights"])]) == 0
  notes = _notes(capsys.readouterr().err)
  assert len(notes) == 1 and "audio stream(s) are not copied" in notes[0], notes


def test_audio_an_mp4_cannot_take_is_left_out_with_a_note(tiny, tmp_path, capsys):
  clip = _video(tmp_path / "alaw.mkv", audio="pcm_alaw")  # MP4 does not take A-law audio
  out = tmp_path / "out.mp4"
  assert deblur.main(["--input", str(clip), "--output", str(out), "--weights",
                      str(tiny["weights"]), "--max-frames", "2"]) == 0
  notes = _notes(capsys.readouterr().err)
  assert len(notes) == 1 and "audio could not be copied" in notes[0], notes
  assert video.probe_streams(out) == ["video"] and open_frames(out).num_frames == 2
  assert sorted(p.name for p in tmp_path.iterdir()) == ["alaw.mkv", "out.mp4"]


def test_an_output_whose_parent_is_a_file_says_so(tiny, tmp_path, capsys):
  (tmp_path / "file").write_text("mine")
  assert deblur.main(["--input", str(_video(tmp_path / "in.mp4")), "--output",
                      str(tmp_path / "file" / "out.mp4"), "--weights",
                      str(tiny["weights"])]) == 2
  line = _one_error(capsys.readouterr().err)
  assert f"{tmp_path / 'file'} is a file, not a folder" in line and "File exists" not in line
  assert synthesize.main(["--frames", str(tiny["data"] / "test" / SEQUENCES[0] / "sharp"),
                          "--average", "3", "--out", str(tmp_path / "file" / "out")]) == 2
  line = _one_error(capsys.readouterr().err)
  assert f"{tmp_path / 'file'} is a file, not a folder" in line
  assert (tmp_path / "file").read_text() == "mine"


def test_a_full_disk_while_writing_video_says_so(tmp_path, monkeypatch):
  """What a full disk leaves: ffmpeg's file unreadable (no frame count), no space left."""
  class Full:
    f_bavail, f_frsize = 0, 4096
  out = tmp_path / "out.mp4"
  sink = FrameSink(out, fps=5)
  for _ in range(4):
    sink.write(np.zeros((8, 8, 3), np.uint8))
  monkeypatch.setattr(video, "probe_frames", lambda path: (None, ["No space left"]))
  monkeypatch.setattr(video.os, "statvfs", lambda path: Full)
  with pytest.raises(DataError) as error:
    sink.close()
  message = str(error.value)
  assert str(out) in message and "disk is full" in message and "None" not in message
  assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- evaluate
def test_evaluate_refuses_an_existing_out_and_replaces_it_whole(tiny, tmp_path, capsys):
  out = tmp_path / "eval"
  old = _old_results(out)
  args = ["--weights", tiny["weights"], "--out", out]
  status, stdout, err = _evaluate(capsys, tiny, *args)
  assert status == 2 and "--overwrite" in _one_error(err) and not stdout
  assert _snapshot(out) == old and _hidden(tmp_path) == []
  status, stdout, err = _evaluate(capsys, tiny, *args, "--overwrite")
  assert status == 0, err
  # One set: the stale figure of the old set is gone with it.
  assert sorted(p.name for p in out.iterdir()) == ["frames.csv", "results.csv",
                                                  "results.json"]
  results = json.loads((out / "results.json").read_text())
  assert results["weights"] == str(tiny["weights"]) and "step" not in results
  # The per-sequence rows are printed, with the values results.json holds.
  for row in results["sequences"]:
    line = next(line for line in stdout.splitlines() if line.startswith(row["sequence"]))
    assert f"{row['frames']:6d} {row['blurry_psnr']:11.2f} {row['psnr']:10.2f}" in line
  assert _hidden(tmp_path) == []
  # --overwrite replaces only what evaluate writes.
  (out / "notes.txt").write_text("mine")
  before = _snapshot(out)
  status, _, err = _evaluate(capsys, tiny, *args, "--overwrite")
  assert status == 2 and "notes.txt would be lost" in _one_error(err)
  assert _snapshot(out) == before


def test_evaluate_on_a_full_disk_keeps_the_old_set_and_names_the_file(tiny, tmp_path,
                                                                     capsys, monkeypatch):
  out = tmp_path / "eval"
  old = _old_results(out)
  real = files.write_text_atomic

  def full_at_frames_csv(path, text):
    if Path(path).name == "frames.csv":
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return real(path, text)
  monkeypatch.setattr(files, "write_text_atomic", full_at_frames_csv)
  status, stdout, err = _evaluate(capsys, tiny, "--weights", tiny["weights"], "--out", out,
                                  "--overwrite")
  line = _one_error(err)
  assert status == 2 and str(out / "frames.csv") in line and "disk is full" in line
  assert _snapshot(out) == old and _hidden(tmp_path) == []  # no new results.json beside
  monkeypatch.undo()

  def full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
  monkeypatch.setattr(image_io.iio, "imwrite", full)  # the writer under image_io
  status, stdout, err = _evaluate(capsys, tiny, "--weights", tiny["weights"], "--out", out,
                                  "--overwrite", "--save-frames", tmp_path / "frames")
  line = _one_error(err)
  assert status == 2 and "disk is full" in line
  assert str(tmp_path / "frames" / SEQUENCES[0] / "000000.png") in line  # not the temporary
  assert _snapshot(out) == old and sorted(p.name for p in tmp_path.iterdir()) == ["eval"]


def test_evaluate_sigterm_leaves_no_saved_frames(tiny, tmp_path, capsys, monkeypatch):
  saved = tmp_path / "frames"
  saved.mkdir()
  (saved / "GOPR0003").mkdir()
  (saved / "GOPR0003" / "000000.png").write_bytes(b"old frame")
  real, written = image_io.write_image, []

  def terminated_after_three(path, image):
    real(path, image)
    written.append(path)
    if len(written) == 3:
      os.kill(os.getpid(), signal.SIGTERM)
  monkeypatch.setattr(image_io, "write_image", terminated_after_three)
  args = ["--weights", tiny["weights"], "--out", tmp_path / "eval", "--save-frames", saved]
  status, _, err = _evaluate(capsys, tiny, *args)
  assert status == 2 and "--overwrite" in _one_error(err) and not written
  status, _, err = _evaluate(capsys, tiny, "--weights", tiny["weights"], "--out", saved,
                             "--save-frames", saved / "inside", "--overwrite")
  assert status == 2 and "one is or holds the other" in _one_error(err) and not written
  status, _, err = _evaluate(capsys, tiny, *args, "--overwrite")
  assert status == 143 and "terminated (SIGTERM); no results written" in err
  assert len(written) == 3 and not any(p.exists() for p in written)
  assert _snapshot(saved) == {"GOPR0003/000000.png": b"old frame"}
  assert sorted(p.name for p in tmp_path.iterdir()) == ["frames"]


def test_evaluate_default_out_and_results_name_the_step(tiny, tmp_path, capsys,
                                                        monkeypatch):
  monkeypatch.chdir(tmp_path)
  for step_args, step in (([], 2), (["--step", "1"], 1)):
    status, stdout, err = _evaluate(capsys, tiny, "--workdir", tiny["workdir"], *step_args)
    assert status == 0, err
    out = tiny["workdir"] / "evaluations" / f"gopro_test_step{step}"
    results = json.loads((out / "results.json").read_text())
    assert results["step"] == step and results["workdir"] == str(tiny["workdir"])
    assert str(out / "results.json") in stdout
  first = json.loads((tiny["workdir"] / "evaluations" / "gopro_test_step2" /
                      "results.json").read_text())
  assert first["psnr"] != results["psnr"]  # two steps, two parameter sets, two folders


# ----------------------------------------------------------------------------- export
@pytest.mark.parametrize("case", ["full disk", "long name", "pth", "exists"])
def test_export_failures_are_one_error_line_and_write_nothing(tiny, tmp_path, capsys,
                                                               monkeypatch, case):
  out = tmp_path / "w.safetensors"
  if case == "full disk":
    def full(*args, **kwargs):
      raise SafetensorError("Error while serializing: I/O error: No space left on device "
                            "(os error 28)")
    monkeypatch.setattr(weights, "save_file", full)
    expected = [str(out), "disk is full"]
  elif case == "long name":
    out = tmp_path / ("w" * 244 + ".safetensors")  # 256 characters
    expected = ["too long"]
  elif case == "pth":
    out = tmp_path / "m.pth"
    expected = [str(out), ".safetensors"]
  else:
    out.write_bytes(b"precious")
    expected = [str(out), "already exists; pass --overwrite"]
  status = export.main(["--workdir", str(tiny["workdir"]), "--out", str(out)])
  line = _one_error(capsys.readouterr().err)
  assert status == 2 and all(text in line for text in expected), line
  left = [] if case != "exists" else [out.name]
  assert sorted(p.name for p in tmp_path.iterdir()) == left


# ----------------------------------------------------------------------------- benchmark
def test_benchmark_out_is_checked_before_the_benchmark_runs(tmp_path, capsys, monkeypatch):
  monkeypatch.setattr(benchmark_cli, "run", lambda settings: pytest.fail("it ran"))
  existing = tmp_path / "bench.json"
  existing.write_text("precious")
  (tmp_path / "file").write_text("x")
  cases = [(existing, "already exists; pass --overwrite"),
           (tmp_path, "is a folder"),
           (tmp_path / "file" / "b.json", "is a file, not a folder")]
  for out, expected in cases:
    assert benchmark_cli.main(["--out", str(out), "--models", "C1H1"]) == 2
    assert expected in _one_error(capsys.readouterr().err)
  assert existing.read_text() == "precious"

  def read_only(*args, **kwargs):
    raise OSError(errno.EROFS, os.strerror(errno.EROFS))
  monkeypatch.setattr(benchmark_cli.tempfile, "TemporaryFile", read_only)
  assert benchmark_cli.main(["--out", str(tmp_path / "new.json"), "--overwrite"]) == 2
  assert "Read-only file system" in _one_error(capsys.readouterr().err)


def test_every_overwrite_refusal_has_the_same_words(tmp_path):
  link = tmp_path / "link"
  link.symlink_to(tmp_path / "gone")
  with pytest.raises(DataError) as error:
    outputs.refuse_existing(link, overwrite=False)
  assert str(error.value) == f"{link}: already exists; pass --overwrite to replace it"
  outputs.refuse_existing(link, overwrite=True)
  outputs.refuse_existing(tmp_path / "new", overwrite=False)
