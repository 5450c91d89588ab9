"""The embedded default dataset: layout, determinism, disjoint splits, plausible blur, rebuilds."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio

from data_pipeline import default_data, image_io, layouts
from data_pipeline.errors import DataError

REPO = Path(__file__).resolve().parents[1]
# A reduced dataset, so that a build takes about a second.
SMALL = dict(height=48, width=64, frames_per_sequence=6, train_sequences=3, test_sequences=2)


def _files(root: Path) -> dict[str, bytes]:
  return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
  return default_data.make_default_dataset(tmp_path_factory.mktemp("small") / "data", seed=3,
                                           progress=False, **SMALL)


def test_gopro_layout(small):
  assert sorted(p.name for p in small.iterdir()) == ["default_data.json", "test", "train"]
  for split, count in (("train", 3), ("test", 2)):
    by_dir = {blur_dir: layouts.find_sequences(small, "gopro", split, blur_dir=blur_dir,
                                               clip_length=6)
              for blur_dir in layouts.GOPRO_BLUR_DIRS}
    assert len(by_dir["blur"]) == count
    for plain, gamma in zip(by_dir["blur"], by_dir["blur_gamma"]):
      assert plain.name == gamma.name
      assert plain.frame_names == gamma.frame_names == tuple(f"{i:06d}.png" for i in range(6))
      assert plain.sharp_paths == gamma.sharp_paths
      assert image_io.read_image(gamma.blur_paths[0]).shape == (48, 64, 3)
      assert sorted(p.name for p in (small / split / plain.name).iterdir()) == [
          "blur", "blur_gamma", "sharp"]
  marker = json.loads((small / "default_data.json").read_text())
  assert marker["version"] == default_data.GENERATOR_VERSION
  assert marker["parameters"] == dict(default_data.DatasetSpec(seed=3, **SMALL).__dict__)
  assert not [p for p in small.parent.iterdir() if p.name != "data"]  # no temporary folders


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, small):
  again = default_data.make_default_dataset(tmp_path / "again", seed=3, progress=False, **SMALL)
  assert _files(again) == _files(small)
  other = default_data.make_default_dataset(tmp_path / "other", seed=4, progress=False, **SMALL)
  first = "test/seq00_motorcycle/sharp/000000.png"
  assert _files(other)[first] != _files(small)[first]


def test_train_and_test_use_different_photographs(small):
  marker = json.loads((small / "default_data.json").read_text())
  used = {split: {photo for info in marker["sequences"][split].values()
                  for photo in [info["background"], *info["objects"]]}
          for split in ("train", "test")}
  assert used["train"] and used["test"] and not used["train"] & used["test"]
  assert all(info["background"] not in info["objects"]
             for split in marker["sequences"].values() for info in split.values())
  # The full default dataset too, and every photograph loads offline as RGB.
  plans = default_data.plan_sequences(default_data.DatasetSpec())
  assert [p.split for p in plans].count("train") == 14 and len(plans) == 18
  photos = {split: {name for p in plans if p.split == split for name in (p.background, *p.objects)}
            for split in ("train", "test")}
  assert not photos["train"] & photos["test"]
  for name in photos["train"] | photos["test"]:
    photo = default_data.PHOTOS[name]()
    assert photo.dtype == np.uint8 and photo.ndim == 3 and photo.shape[2] == 3
    assert min(photo.shape[:2]) >= 300


def _gradient_energy(image: np.ndarray) -> float:
  image = image.astype(np.float64)
  return float(np.abs(np.diff(image, axis=0)).mean() + np.abs(np.diff(image, axis=1)).mean())


def test_blur_is_plausible(small):
  scores = []
  for split in ("train", "test"):
    for sequence in layouts.find_sequences(small, "gopro", split, blur_dir="blur_gamma"):
      for path, sharp_path in zip(sequence.blur_paths, sequence.sharp_paths):
        blur_gamma, sharp = image_io.read_image(path), image_io.read_image(sharp_path)
        blur = image_io.read_image(Path(str(path).replace("blur_gamma", "blur")))
        scores.append(peak_signal_noise_ratio(sharp, blur_gamma, data_range=255))
        # Averaging removes detail; a power mean (p = 2.2) is never below the plain mean.
        assert _gradient_energy(blur_gamma) < _gradient_energy(sharp)
        assert np.all(blur_gamma.astype(int) >= blur.astype(int) - 1)
  assert 20.0 < np.mean(scores) < 32.0, np.mean(scores)
  assert min(scores) < 28.0 and max(scores) > 24.0  # mixed blur strengths


def test_ensure_keeps_a_complete_dataset_and_rebuilds_an_incomplete_one(tmp_path, small):
  root = tmp_path / "data"
  default_data.ensure_default_dataset(root, seed=3, progress=False, **SMALL)
  probe = root / "train" / "seq01_rocket" / "sharp" / "000002.png"
  stamp = probe.stat().st_ino, probe.stat().st_mtime_ns
  assert default_data.ensure_default_dataset(root, seed=3, progress=False, **SMALL) == root
  assert (probe.stat().st_ino, probe.stat().st_mtime_ns) == stamp  # not rebuilt
  probe.unlink()
  assert not default_data.is_complete(root)
  default_data.ensure_default_dataset(root, seed=3, progress=False, **SMALL)
  assert default_data.is_complete(root) and _files(root) == _files(small)
  # Other parameters make it outdated: rebuilt with them.
  default_data.ensure_default_dataset(root, seed=3, progress=False, **dict(SMALL, height=32))
  assert image_io.read_image(probe).shape == (32, 64, 3)


def test_interrupted_build_leaves_nothing(tmp_path, monkeypatch):
  def broken(spec, plan):
    yield from ()
    raise KeyboardInterrupt
  monkeypatch.setattr(default_data, "render_sequence", broken)
  with pytest.raises(KeyboardInterrupt):
    default_data.make_default_dataset(tmp_path / "data", progress=False, **SMALL)
  assert list(tmp_path.iterdir()) == []


def test_foreign_folders_are_never_touched(tmp_path):
  foreign = tmp_path / "mine"
  foreign.mkdir()
  (foreign / "notes.txt").write_text("precious")
  with pytest.raises(DataError, match="not a default dataset"):
    default_data.ensure_default_dataset(foreign, progress=False, **SMALL)
  with pytest.raises(DataError, match="not empty"):
    default_data.make_default_dataset(foreign, progress=False, **SMALL)
  assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
  with pytest.raises(DataError, match="unknown default data parameters: colour"):
    default_data.make_default_dataset(tmp_path / "x", colour=3)
  with pytest.raises(DataError, match="odd"):
    default_data.make_default_dataset(tmp_path / "x", min_exposure=8)
  result = subprocess.run([sys.executable, "-m", "data_pipeline.default_data", "--out",
                           str(foreign)], cwd=REPO, capture_output=True, text=True, timeout=120)
  assert result.returncode == 2 and result.stderr.startswith("error: ")
  assert "mine" in result.stderr and "Traceback" not in result.stderr


def test_example_image(small):
  example = default_data.example_image(small)
  assert example.dtype == np.uint8 and example.shape == (2 * 48 + 4, 2 * 64 + 4, 3)
  blurry, sharp = example[:48, :64], example[:48, 68:]
  assert _gradient_energy(blurry) < _gradient_energy(sharp)


def test_a_rebuild_never_deletes_files_a_user_added(tmp_path, small):
  root = shutil.copytree(small, tmp_path / "data")
  mine = root / "train" / "my_sequence" / "sharp" / "000000.png"
  mine.parent.mkdir(parents=True)
  mine.write_bytes(b"my frame")
  (root / "notes.txt").write_text("mine")
  missing = root / "test" / next(p.name for p in (root / "test").iterdir()) / "blur"
  (sorted(missing.iterdir())[0]).unlink()  # one generated frame gone: needs a rebuild
  before = _files(root)
  with pytest.raises(DataError, match=r"did not make \(notes.txt, train/my_sequence"):
    default_data.ensure_default_dataset(root, seed=3, progress=False, **SMALL)
  assert _files(root) == before  # nothing touched
