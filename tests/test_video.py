"""Video and frame-folder I/O: round trips, atomic writes, bad inputs."""

import os
import stat
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

import real_clip
from data_pipeline.errors import DataError
from data_pipeline.video import FrameSink, open_frames, probe_frames


@pytest.fixture(scope="module")
def real_frames():
  """The first 10 frames of the real clip, subsampled to 96x160, uint8."""
  return real_clip.small_frames(10, 96, 160)


def _psnr(a, b):
  mse = np.mean((a.astype(np.float64) - b) ** 2)
  return 10 * np.log10(255**2 / mse)


def _leftovers(folder: Path, keep: set[str]) -> list[str]:
  return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_real_clip_ships_with_licence_and_source():
  clip = real_clip.facts()
  folder = clip.path.parent
  assert "Apache License" in (folder / "LICENSE").read_text()
  readme = (folder / "README.md").read_text()
  assert "Apache-2.0" in readme and clip.path.name in readme
  assert f"{clip.num_frames} frames, {clip.width}x{clip.height}, {clip.fps:g} fps" in readme
  assert clip.path.stat().st_size < 2**20  # small enough to live in git


def test_real_video_metadata():
  clip = real_clip.facts()
  source = open_frames(clip.path)
  assert (source.fps, source.num_frames) == (clip.fps, clip.num_frames)
  assert (source.height, source.width) == (clip.height, clip.width)
  first = next(iter(source))
  assert first.dtype == np.uint8 and first.shape == (clip.height, clip.width, 3)
  np.testing.assert_array_equal(first, real_clip.frames(1)[0])


@pytest.mark.parametrize("trim_h,trim_w", [(0, 0), (1, 3)])  # odd sizes too
def test_video_round_trip_keeps_count_size_fps(tmp_path, real_frames, trim_h, trim_w):
  height, width = real_frames.shape[1] - trim_h, real_frames.shape[2] - trim_w
  frames = np.ascontiguousarray(real_frames[:, :height, :width])
  out = tmp_path / "clip.mp4"
  with FrameSink(out, fps=15) as sink:
    for frame in frames:
      sink.write(frame)
    assert not out.exists()  # only the temporary exists while writing
  assert _leftovers(tmp_path, keep={"clip.mp4"}) == []
  umask = os.umask(0o022)
  os.umask(umask)
  assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600
  back = open_frames(out)
  assert (back.num_frames, back.height, back.width, back.fps) == (len(frames), height, width,
                                                                  15.0)
  decoded = np.stack(list(back))
  assert decoded.shape == frames.shape
  assert _psnr(decoded, frames) > 36  # CRF 15: near-lossless (measured about 40 dB)


def test_folder_round_trip_is_lossless(tmp_path, real_frames):
  out = tmp_path / "frames"
  with FrameSink(out) as sink:
    for frame in real_frames:
      sink.write(frame)
  assert sorted(p.name for p in out.iterdir())[:2] == ["000000.png", "000001.png"]
  source = open_frames(out)
  assert (source.num_frames, source.height, source.width, source.fps) == (
      len(real_frames), *real_frames.shape[1:3], None)
  np.testing.assert_array_equal(np.stack(list(source)), real_frames)


def test_folder_frames_in_natural_order(tmp_path, real_frames):
  folder = tmp_path / "frames"
  folder.mkdir()
  for i in (10, 9, 1):  # "10" sorts before "9" as text
    iio.imwrite(folder / f"f{i}.png", real_frames[i % 10])
  (folder / "notes.txt").write_text("not a frame")
  frames = list(open_frames(folder))
  np.testing.assert_array_equal(np.stack(frames), real_frames[[1, 9, 0]])


def test_error_inside_sink_leaves_no_output(tmp_path, real_frames):
  for name in ("clip.mp4", "frames"):
    out = tmp_path / name
    with pytest.raises(RuntimeError, match="boom"):
      with FrameSink(out, fps=15) as sink:
        sink.write(real_frames[0])
        sink.write(real_frames[1])
        raise RuntimeError("boom")
    assert not out.exists()
  assert _leftovers(tmp_path, keep=set()) == []


def test_existing_output_kept_until_new_one_is_complete(tmp_path, real_frames):
  out = tmp_path / "clip.mp4"
  out.write_bytes(b"old result")
  with pytest.raises(DataError, match="already exists"):
    FrameSink(out, fps=15)
  with pytest.raises(KeyboardInterrupt):
    with FrameSink(out, fps=15, overwrite=True) as sink:
      sink.write(real_frames[0])
      raise KeyboardInterrupt
  assert out.read_bytes() == b"old result"
  with FrameSink(out, fps=15, overwrite=True) as sink:
    for frame in real_frames[:3]:
      sink.write(frame)
  assert open_frames(out).num_frames == 3
  # A folder is replaced whole (no stale frames from the old one).
  folder = tmp_path / "frames"
  with FrameSink(folder) as sink:
    for frame in real_frames[:4]:
      sink.write(frame)
  with FrameSink(folder, overwrite=True) as sink:
    sink.write(real_frames[5])
  assert [p.name for p in folder.iterdir()] == ["000000.png"]
  assert _leftovers(tmp_path, keep={"clip.mp4", "frames"}) == []


def test_sink_rejects_frames_of_another_size(tmp_path, real_frames):
  with pytest.raises(ValueError, match=f"frame 1 is 80x{real_frames.shape[1]}"):
    with FrameSink(tmp_path / "clip.mp4", fps=15) as sink:
      sink.write(real_frames[0])
      sink.write(np.ascontiguousarray(real_frames[1][:, :80]))
  assert list(tmp_path.iterdir()) == []
  with pytest.raises(ValueError, match="uint8"):
    FrameSink(tmp_path / "f").write(real_frames[0].astype(np.float32))


def test_empty_sink_is_an_error(tmp_path):
  with pytest.raises(DataError, match="no frames"):
    with FrameSink(tmp_path / "clip.mp4", fps=15):
      pass
  assert list(tmp_path.iterdir()) == []


def test_missing_input(tmp_path):
  path = tmp_path / "nothing.mp4"
  with pytest.raises(DataError, match=f"{path}: no such"):
    open_frames(path)


def test_garbage_video(tmp_path):
  path = tmp_path / "garbage.mp4"
  path.write_bytes(np.random.default_rng(0).bytes(4000))
  with pytest.raises(DataError, match=f"{path}: cannot be read as a video"):
    open_frames(path)


def test_truncated_videos(tmp_path, real_frames):
  # ffmpeg writes the index (moov) last: cut, the file has none.
  whole = tmp_path / "whole.mp4"
  with FrameSink(whole, fps=15) as sink:
    for frame in real_frames:
      sink.write(frame)
  cut = tmp_path / "cut.mp4"
  cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
  with pytest.raises(DataError, match=f"{cut}: cannot be read as a video"):
    open_frames(cut)
  # The real clip has its index first: cut, the index promises missing data.
  clip = real_clip.facts()
  data = clip.path.read_bytes()
  assert 0 <= data.find(b"moov") < data.find(b"mdat")
  cut_real = tmp_path / "cut_real.mp4"
  cut_real.write_bytes(data[: len(data) // 3])
  assert probe_frames(clip.path) == (clip.num_frames, [])
  with pytest.raises(DataError, match=f"{cut_real}: video file is truncated"):
    open_frames(cut_real)


def test_empty_folder_and_mixed_sizes(tmp_path, real_frames):
  empty = tmp_path / "empty"
  empty.mkdir()
  (empty / "readme.txt").write_text("no frames here")
  with pytest.raises(DataError, match=f"{empty}: folder holds no image files"):
    open_frames(empty)
  mixed = tmp_path / "mixed"
  mixed.mkdir()
  iio.imwrite(mixed / "000.png", real_frames[0])
  iio.imwrite(mixed / "001.png", real_frames[1][:, :80])
  source = open_frames(mixed)
  with pytest.raises(DataError, match=f"001.png: frame is 80x{real_frames.shape[1]}"):
    list(source)


def test_unwritable_output(tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("a file, not a folder")
  with pytest.raises(DataError, match=f"{blocker / 'out.mp4'}: cannot be created: {blocker} "
                     f"is a file, not a folder"):
    FrameSink(blocker / "out.mp4", fps=15)
  with pytest.raises(DataError, match="output must be a video file"):
    FrameSink(tmp_path / "out.txt")
  assert os.listdir(tmp_path) == ["a_file"]
