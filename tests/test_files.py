"""data_pipeline.safe_io.files: atomic writes, natural order, progress lines."""

import io
import json
import os
import stat

import pytest

from data_pipeline.safe_io import files


def test_atomic_write_gives_the_mode_of_a_plain_open(tmp_path):
  old = os.umask(0o027)
  try:
    path = files.write_text_atomic(tmp_path / "sub" / "a.txt", "hello")
    (tmp_path / "plain.txt").write_text("x")
  finally:
    os.umask(old)
  assert path.read_text() == "hello"
  assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)
  assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
  path = tmp_path / "results.json"
  files.write_json_atomic(path, {"psnr": 30.0})
  with pytest.raises(RuntimeError):
    with files.atomic_path(path) as temporary:
      temporary.write_text("half a fi")
      raise RuntimeError("disk full")
  assert json.loads(path.read_text()) == {"psnr": 30.0}
  assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_json_holds_values_json_cannot_as_strings(tmp_path):
  path = files.write_json_atomic(tmp_path / "c.json", {"root": tmp_path, "n": 2})
  assert json.loads(path.read_text()) == {"root": str(tmp_path), "n": 2}


def test_a_folder_built_aside_replaces_the_old_one_with_a_plain_mkdir_mode(tmp_path):
  target = tmp_path / "out"
  target.mkdir()
  (target / "old.png").write_bytes(b"old")
  old = os.umask(0o027)
  try:
    partial = files.make_partial_folder(target)
    (tmp_path / "plain").mkdir()
  finally:
    os.umask(old)
  assert partial.parent == tmp_path and partial.name.startswith(".out.partial-")
  assert stat.S_IMODE(partial.stat().st_mode) == 0o750
  assert stat.S_IMODE((tmp_path / "plain").stat().st_mode) == 0o750
  (partial / "new.png").write_bytes(b"new")
  files.replace_folder(partial, target)
  assert [p.name for p in target.iterdir()] == ["new.png"]
  assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "plain"]  # nothing left aside
  files.replace_folder(files.make_partial_folder(tmp_path / "fresh"), tmp_path / "fresh")
  assert (tmp_path / "fresh").is_dir()


def test_seconds_left_is_the_mean_rate_so_far():
  assert files.seconds_left(10.0, 2, 8) == 30.0
  assert files.seconds_left(4.0, 1.5, 1.5) == 0.0


def test_natural_sort_key_orders_numbers_by_value():
  names = ["f10.png", "f2.png", "f1.png", "a.png", "f02b.png"]
  assert sorted(names, key=files.natural_sort_key) == [
      "a.png", "f1.png", "f2.png", "f02b.png", "f10.png"]


def test_hms():
  assert files.hms(0) == "0:00:00" and files.hms(3725.4) == "1:02:05"


def test_progress_in_a_log_writes_lines_with_rate_and_eta():
  stream = io.StringIO()
  progress = files.Progress(4, "deblur", stream=stream, log_interval_s=0)
  for done in range(1, 5):
    progress.update(done)
  progress.finish()
  lines = stream.getvalue().splitlines()
  assert len(lines) == 4 and "\r" not in stream.getvalue()
  assert lines[-1].startswith("deblur: 4/4 frames (100%)") and "ETA 0:00:00" in lines[-1]
  assert lines[0].startswith("deblur: 1/4 frames ( 25%)") and "frames/s" in lines[0]


def test_progress_without_a_total_counts_only():
  stream = io.StringIO()
  progress = files.Progress(None, "synthesize", unit="windows", stream=stream, log_interval_s=0)
  progress.update(3)
  assert stream.getvalue().startswith("synthesize: 3 windows ") and "ETA" not in stream.getvalue()
