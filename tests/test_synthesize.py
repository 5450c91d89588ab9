"""GOPRO-recipe blur synthesis, checked against the recipe recomputed here with numpy."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import skimage.transform

import real_clip
from data_pipeline import synthesize

REPO = Path(__file__).resolve().parents[1]
HEIGHT, WIDTH = 96, 160


@pytest.fixture(scope="module")
def real_frames() -> np.ndarray:
  """24 frames of the real (hand-shaken) clip, resized to 96x160, uint8."""
  frames = []
  for frame in real_clip.frames(24):
    small = skimage.transform.resize(frame / 255.0, (HEIGHT, WIDTH), anti_aliasing=True)
    frames.append(np.rint(small * 255).astype(np.uint8))
  return np.stack(frames)


def _write_frames(folder: Path, frames: np.ndarray, first: int = 0) -> Path:
  folder.mkdir(parents=True)
  for index, frame in enumerate(frames):
    PIL.Image.fromarray(frame).save(folder / f"{first + index:05d}.png")
  return folder


def _read(path: Path) -> np.ndarray:
  return np.asarray(PIL.Image.open(path).convert("RGB"))


def _run_cli(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", "data_pipeline.synthesize", *map(str, args)],
                        cwd=REPO, capture_output=True, text=True, timeout=300)


def _expected(window: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The recipe written out: plain mean, gamma-domain mean, middle frame."""
  s = window.astype(np.float64) / 255.0
  plain = s.mean(axis=0) * 255.0
  gamma = np.power(np.power(s, 2.2).mean(axis=0), 1 / 2.2) * 255.0
  return plain, gamma, window[len(window) // 2]


def _check_sequence(folder: Path, frames: np.ndarray, average: int) -> None:
  count = len(frames) // average
  for name in ("blur", "blur_gamma", "sharp"):
    assert sorted(p.name for p in (folder / name).iterdir()) == [
        f"{i:06d}.png" for i in range(count)]
  for index in range(count):
    window = frames[index * average:(index + 1) * average]
    plain, gamma, middle = _expected(window)
    blur = _read(folder / "blur" / f"{index:06d}.png")
    blur_gamma = _read(folder / "blur_gamma" / f"{index:06d}.png")
    assert np.abs(blur - plain).max() <= 1.0
    assert np.abs(blur_gamma - gamma).max() <= 1.0
    np.testing.assert_array_equal(_read(folder / "sharp" / f"{index:06d}.png"), middle)
    # A power mean with exponent 2.2 is never below the arithmetic mean.
    assert np.all(blur_gamma.astype(int) >= blur.astype(int) - 1)
    # The real video moves, so a window is not any of its frames.
    assert np.abs(blur.astype(float) - middle).mean() > 1.0


def test_sequence_folders_match_the_recipe(tmp_path, real_frames):
  frames_dir = tmp_path / "frames"
  _write_frames(frames_dir / "shake_a", real_frames, first=37)  # 24 = 3 windows + 3
  _write_frames(frames_dir / "shake_b", real_frames[5:15])     # 10 = 1 window + 3
  result = _run_cli("--frames", frames_dir, "--average", 7, "--out", tmp_path / "out")
  assert result.returncode == 0, result.stderr
  assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["shake_a", "shake_b"]
  _check_sequence(tmp_path / "out" / "shake_a", real_frames, 7)
  _check_sequence(tmp_path / "out" / "shake_b", real_frames[5:15], 7)
  assert "windows" in result.stderr and "ETA" in result.stderr  # progress


def test_downsample_then_average(tmp_path, real_frames):
  frames_dir = _write_frames(tmp_path / "my_clip", real_frames[:21])
  result = _run_cli("--frames", frames_dir, "--average", 7, "--downsample", "80x48",
                    "--out", tmp_path / "out")
  assert result.returncode == 0, result.stderr
  # One folder of frames is one sequence named after the folder.
  assert [p.name for p in (tmp_path / "out").iterdir()] == ["my_clip"]
  small = np.stack([
      np.rint(skimage.transform.resize(f / 255.0, (48, 80), anti_aliasing=True) * 255)
      .astype(np.uint8) for f in real_frames[:21]])
  _check_sequence(tmp_path / "out" / "my_clip", small, 7)
  assert _read(tmp_path / "out" / "my_clip" / "sharp" / "000000.png").shape == (48, 80, 3)


def test_recipe_functions_on_hand_computed_values():
  window = np.zeros((3, 1, 2, 3), np.uint8)
  window[1, 0, 0] = 255
  window[:, 0, 1] = 100
  result = synthesize.blur_window(window)
  # Pixel 0: frames 0, 255, 0 -> plain mean 85, gamma mean 255 * (1/3) ** (1/2.2) = 155.
  assert result.blur[0, 0].tolist() == [85, 85, 85]
  assert result.blur_gamma[0, 0].tolist() == [155, 155, 155]
  assert result.blur_gamma[0, 1].tolist() == [100, 100, 100]
  np.testing.assert_array_equal(result.sharp, window[1])
  assert synthesize.parse_size("960x540") == (540, 960)


@pytest.mark.parametrize("bad", ["960", "960x", "x540", "960x540x2", "0x540", "axb", "-5x4"])
def test_bad_downsample_strings(bad):
  with pytest.raises(synthesize.DataError, match="bad size"):
    synthesize.parse_size(bad)


def _error_run(capsys, argv) -> str:
  assert synthesize.main([str(a) for a in argv]) == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
  return err


def test_bad_inputs_exit_2_with_one_message(tmp_path, real_frames, capsys):
  out = tmp_path / "out"
  good = _write_frames(tmp_path / "good", real_frames[:7])
  short = _write_frames(tmp_path / "short", real_frames[:5])
  empty = tmp_path / "empty"
  empty.mkdir()
  mixed = _write_frames(tmp_path / "mixed", real_frames[:7])
  PIL.Image.fromarray(real_frames[0, :40, :50]).save(mixed / "00003.png")
  err = _error_run(capsys, ["--frames", tmp_path / "missing", "--average", 7, "--out", out])
  assert "missing" in err and "not found" in err
  assert "no frames" in _error_run(capsys, ["--frames", empty, "--average", 7, "--out", out])
  err = _error_run(capsys, ["--frames", short, "--average", 7, "--out", out])
  assert "short" in err and "5 frames" in err
  err = _error_run(capsys, ["--frames", mixed, "--average", 7, "--out", out])
  assert "00003.png" in err and "40x50" in err
  assert "odd" in _error_run(capsys, ["--frames", good, "--average", 6, "--out", out])
  assert "odd" in _error_run(capsys, ["--frames", good, "--average", 0, "--out", out])
  assert "bad size" in _error_run(capsys, ["--frames", good, "--average", 7,
                                           "--downsample", "80*48", "--out", out])
  assert "larger" in _error_run(capsys, ["--frames", good, "--average", 7,
                                         "--downsample", "320x48", "--out", out])
  assert not out.exists()  # nothing was written for any of them


def test_existing_output_is_kept_unless_overwrite(tmp_path, real_frames, capsys):
  frames_dir = _write_frames(tmp_path / "clip", real_frames[:14])
  out = tmp_path / "out"
  (out / "clip").mkdir(parents=True)
  (out / "clip" / "precious.txt").write_text("keep me")
  err = _error_run(capsys, ["--frames", frames_dir, "--average", 7, "--out", out])
  assert "already exists" in err and "--overwrite" in err
  assert (out / "clip" / "precious.txt").read_text() == "keep me"
  # --overwrite replaces only what synthesize wrote: not a folder with other files.
  err = _error_run(capsys, ["--frames", frames_dir, "--average", 7, "--out", out,
                            "--overwrite"])
  assert "precious.txt would be lost" in err
  assert (out / "clip" / "precious.txt").read_text() == "keep me"
  (out / "clip" / "precious.txt").unlink()
  assert synthesize.main(["--frames", str(frames_dir), "--average", "7", "--out", str(out)]) == 0
  (out / "clip" / "sharp" / "000000.png").write_bytes(b"older result")
  assert synthesize.main(["--frames", str(frames_dir), "--average", "7", "--out", str(out),
                          "--overwrite"]) == 0
  assert (out / "clip" / "sharp" / "000000.png").read_bytes().startswith(b"\x89PNG")
  assert sorted(p.name for p in (out / "clip").iterdir()) == ["blur", "blur_gamma", "sharp"]
  assert len(list((out / "clip" / "sharp").iterdir())) == 2
  assert [p.name for p in out.iterdir()] == ["clip"]  # no temporary folders left


def test_cli_process_exit_status(tmp_path):
  result = _run_cli("--frames", tmp_path / "nowhere", "--average", 7, "--out", tmp_path / "o")
  assert result.returncode == 2
  assert result.stderr.startswith("error: ") and "nowhere" in result.stderr
  assert "Traceback" not in result.stderr


def test_a_sequence_folder_made_meanwhile_by_another_run_is_kept(tmp_path, real_frames,
                                                                 capsys, monkeypatch):
  """Without --overwrite the result goes into place only where nothing is: a folder that
  another run wrote while this one averaged is kept, not replaced."""
  frames_dir = _write_frames(tmp_path / "clip", real_frames[:14])
  out = tmp_path / "out"
  real_blur_window = synthesize.blur_window

  def other_run_writes_first(window):
    (out / "clip").mkdir(parents=True, exist_ok=True)
    (out / "clip" / "theirs.txt").write_text("another run's")
    return real_blur_window(window)
  monkeypatch.setattr(synthesize, "blur_window", other_run_writes_first)
  assert synthesize.main(["--frames", str(frames_dir), "--average", "7", "--out", str(out)]) == 2
  lines = capsys.readouterr().err.strip().splitlines()  # progress lines, then the error
  errors = [line for line in lines if line.startswith("error: ")]
  assert errors == lines[-1:], lines
  assert "appeared while this run was writing" in errors[0] and "--overwrite" in errors[0]
  assert [p.name for p in (out / "clip").iterdir()] == ["theirs.txt"]
  assert [p.name for p in out.iterdir()] == ["clip"]  # no temporary folders left
