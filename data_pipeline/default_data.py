"""The embedded default dataset: GOPRO-style blurry videos made from photographs.

    python -m data_pipeline.default_data --out data/default \
        [--example docs/default_data_example.png]

Nothing is downloaded: the scenes are photographs shipped inside scikit-image
(`skimage.data`), with different photographs for the train and test splits
(`TRAIN_PHOTOS`, `TEST_PHOTOS`). Each sequence films one photograph with a
hand-held camera at a high frame rate and turns the frames into a video the
way GOPRO was made (`data_pipeline.synthesize`):

  * the camera follows a smooth random trajectory (sub-pixel translation, small
    rotation and zoom: sums of sinusoids, so it speeds up, slows down and turns
    like a shaking hand) over a larger, anti-aliased downscaled copy of the
    photograph;
  * 1 to 3 foreground objects (patches cut from other photographs of the same
    split, with soft-edged superellipse masks) move and turn on their own
    smooth paths in the scene, so blur differs from region to region;
  * frames are rendered with bicubic-spline warps (scipy.ndimage), rounded to
    8 bits, and every `frame_interval`-th high-rate frame is a video frame: its
    `blur_gamma` is the gamma-domain mean, and `blur` the plain mean, of an
    exposure of 7 to 13 high-rate frames centred on it (varying per frame and
    per sequence, so blur strengths are mixed), and its `sharp` is the centre
    frame.

The result is the GOPRO layout, `{train,test}/<seq>/{blur,blur_gamma,sharp}/
NNNNNN.png`, with a marker file `default_data.json` recording the generator
version, its parameters and every sequence. A dataset is built in a hidden
temporary folder next to the destination and renamed into place when
complete, so an interrupted run never leaves half a dataset. The same
parameters and seed give the same bytes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import skimage.data
import skimage.transform
from scipy import ndimage

from data_pipeline import image_io, layouts, synthesize
from data_pipeline.safe_io import files
from data_pipeline.commandline import termination
from data_pipeline.commandline.console import HelpFormatter
from data_pipeline.errors import DataError

GENERATOR = "data_pipeline.default_data"
GENERATOR_VERSION = 1
MARKER = "default_data.json"
SPLITS = ("train", "test")


def _rgb(image: np.ndarray) -> np.ndarray:
  return np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image


# Photographs shipped with scikit-image (loaded without network access).
PHOTOS: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": skimage.data.astronaut,
    "rocket": skimage.data.rocket,
    "immunohistochemistry": skimage.data.immunohistochemistry,
    "camera": lambda: _rgb(skimage.data.camera()),
    "hubble_deep_field": skimage.data.hubble_deep_field,
    "coins": lambda: _rgb(skimage.data.coins()),
    "brick": lambda: _rgb(skimage.data.brick()),
    "gravel": lambda: _rgb(skimage.data.gravel()),
    "grass": lambda: _rgb(skimage.data.grass()),
    "coffee": skimage.data.coffee,
    "chelsea": skimage.data.chelsea,
    "motorcycle": lambda: skimage.data.stereo_motorcycle()[0],
}
# Backgrounds, taken in turn by the sequences of a split.
TRAIN_PHOTOS = ("astronaut", "rocket", "immunohistochemistry", "camera",
                "hubble_deep_field", "coins")
TEST_PHOTOS = ("motorcycle", "coffee", "chelsea")
# Foreground objects are cut from these (never from the sequence's background).
TRAIN_OBJECT_PHOTOS = TRAIN_PHOTOS + ("brick", "gravel", "grass")
TEST_OBJECT_PHOTOS = TEST_PHOTOS
# Grayscale photographs; objects cut from them get a random colour tint.
GRAY_PHOTOS = ("camera", "coins", "brick", "gravel", "grass")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """What `make_default_dataset` builds; recorded in the marker file.

  Attributes:
    seed: seed of every random choice (numpy Generators, one per sequence).
    height, width: frame size in pixels.
    frames_per_sequence: video frames per sequence.
    train_sequences, test_sequences: sequences per split.
    frame_interval: high-rate frames from one video frame to the next.
    min_exposure, max_exposure: odd range of high-rate frames averaged into
      one blurry frame (GOPRO used 7 to 13).
  """
  seed: int = 0
  height: int = 128
  width: int = 160
  frames_per_sequence: int = 24
  train_sequences: int = 14
  test_sequences: int = 4
  frame_interval: int = 13
  min_exposure: int = 7
  max_exposure: int = 13

  def validate(self) -> None:
    if self.height < 16 or self.width < 16:
      raise DataError(f"default data frames must be at least 16x16, got "
                      f"{self.width}x{self.height}")
    if self.height > 256 or self.width > 256:
      raise DataError(f"default data frames must be at most 256x256 (the photographs "
                      f"are small), got {self.width}x{self.height}")
    if self.frames_per_sequence < 1 or self.train_sequences < 1 or self.test_sequences < 1:
      raise DataError("default data needs at least one frame and one sequence per split")
    if (self.min_exposure % 2 == 0 or self.max_exposure % 2 == 0
        or not 1 <= self.min_exposure <= self.max_exposure <= self.frame_interval):
      raise DataError(
          f"exposures must be odd with 1 <= min_exposure ({self.min_exposure}) <= "
          f"max_exposure ({self.max_exposure}) <= frame_interval ({self.frame_interval})")


# ----------------------------------------------------------------------------- motion
def _sinusoids(rng: np.random.Generator, steps: np.ndarray, speed: float,
               periods: tuple[float, float], components: int = 3) -> np.ndarray:
  """A smooth random path over `steps`: a sum of sinusoids with peak speed ~`speed`/step."""
  path = np.zeros(len(steps))
  weights = rng.dirichlet(np.ones(components))
  for weight in weights:
    period = rng.uniform(*periods)
    amplitude = speed * weight * period / (2 * np.pi)
    path += amplitude * np.sin(2 * np.pi * steps / period + rng.uniform(0, 2 * np.pi))
  return path


@dataclasses.dataclass(frozen=True)
class CameraPath:
  """Per high-rate step: translation [N, 2] (y, x pixels), rotation [N] (rad), zoom [N]."""
  shift: np.ndarray
  angle: np.ndarray
  zoom: np.ndarray

  def scene_coords(self, step: int, grid: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Scene (y, x) of every output pixel at `step`; grid [2, H, W] is centred on the view."""
    c, s = np.cos(self.angle[step]), np.sin(self.angle[step])
    y, x = grid
    rotated = np.stack([c * y - s * x, s * y + c * x])
    return (centre + self.shift[step])[:, None, None] + self.zoom[step] * rotated


def _camera_path(rng: np.random.Generator, steps: np.ndarray) -> CameraPath:
  """A hand-held camera: slow sway, faster jitter, small rotation and zoom."""
  speed = rng.uniform(0.4, 1.4)  # pixels per high-rate step, per sequence
  shift = np.stack([
      _sinusoids(rng, steps, speed, (60, 300)) + _sinusoids(rng, steps, 0.3 * speed, (12, 40), 2)
      for _ in range(2)], axis=-1)
  angle = _sinusoids(rng, steps, rng.uniform(0.0, 0.002), (80, 300), 2)
  zoom = 1.0 + _sinusoids(rng, steps, rng.uniform(0.0, 0.0006), (100, 300), 2)
  return CameraPath(shift, angle, zoom)


# ----------------------------------------------------------------------------- scene
@dataclasses.dataclass(frozen=True)
class MovingObject:
  """A textured superellipse moving in scene coordinates.

  Attributes:
    coefs: cubic-spline coefficients of the texture, [3, h, w] (texture
      centre at its middle; 1 texture pixel = 1 scene pixel).
    radii: (ry, rx) semi-axes in pixels.
    power: superellipse exponent (2 = ellipse, larger = more rectangular).
    centre: [N, 2] scene (y, x) of the object's centre per step.
    angle: [N] rotation per step (rad).
  """
  coefs: np.ndarray
  radii: tuple[float, float]
  power: float
  centre: np.ndarray
  angle: np.ndarray


def _spline(image: np.ndarray) -> np.ndarray:
  """[H, W, 3] float -> [3, H, W] cubic-spline coefficients (mirror boundary)."""
  return np.stack([ndimage.spline_filter(image[..., c], order=3, mode="mirror")
                   for c in range(3)])


def _sample(coefs: np.ndarray, coords: np.ndarray) -> np.ndarray:
  """Bicubic samples of [3, h, w] coefficients at coords [2, ...] -> [..., 3]."""
  return np.stack([ndimage.map_coordinates(c, coords, order=3, prefilter=False, mode="mirror")
                   for c in coefs], axis=-1)


def _downscale(photo: np.ndarray, factor: float) -> np.ndarray:
  """uint8 [H, W, 3] -> float64 [H/factor, W/factor, 3] in [0, 1], anti-aliased."""
  image = photo.astype(np.float64) / 255.0
  if factor == 1.0:
    return image
  return skimage.transform.rescale(image, 1.0 / factor, order=1, anti_aliasing=True,
                                   channel_axis=-1, mode="reflect")


def _view_box(camera: CameraPath, height: int, width: int) -> np.ndarray:
  """[[ymin, xmin], [ymax, xmax]] of the view corners over the path, around the centre."""
  corners = np.array([[-1, -1], [-1, 1], [1, -1], [1, 1]], float) * [height / 2, width / 2]
  c, s = np.cos(camera.angle), np.sin(camera.angle)
  ys = c[:, None] * corners[:, 0] - s[:, None] * corners[:, 1]
  xs = s[:, None] * corners[:, 0] + c[:, None] * corners[:, 1]
  ys = camera.zoom[:, None] * ys + camera.shift[:, :1]
  xs = camera.zoom[:, None] * xs + camera.shift[:, 1:]
  return np.array([[ys.min(), xs.min()], [ys.max(), xs.max()]])


def _moving_object(rng: np.random.Generator, photo: np.ndarray, steps: np.ndarray,
                   view_centre: np.ndarray, height: int, width: int, gray: bool) -> MovingObject:
  """An object cut from `photo` that moves about the view's mean position."""
  ry, rx = rng.uniform(0.1, 0.25, size=2) * min(height, width)
  half = int(np.ceil(max(ry, rx) * np.sqrt(2))) + 4
  factor = rng.uniform(1.0, 2.5)
  texture = _downscale(photo, min(factor, min(photo.shape[:2]) / (2 * half + 2)))
  # The most detailed of a few random crops (flat patches teach nothing).
  tops = rng.integers(0, texture.shape[0] - 2 * half + 1, size=8)
  lefts = rng.integers(0, texture.shape[1] - 2 * half + 1, size=8)
  crops = [texture[t:t + 2 * half, l:l + 2 * half] for t, l in zip(tops, lefts)]
  texture = max(crops, key=lambda crop: float(np.abs(np.diff(crop, axis=0)).mean()
                                              + np.abs(np.diff(crop, axis=1)).mean()))
  if gray:  # textures without colour become coloured objects
    texture = texture * rng.uniform(0.45, 1.0, size=3)
  speed = rng.uniform(0.4, 2.0)
  reach = np.array([height / 2 - 0.5 * ry, width / 2 - 0.5 * rx])
  start = view_centre + rng.uniform(-0.6, 0.6, size=2) * reach
  path = np.stack([_sinusoids(rng, steps, speed, (80, 400), 2) for _ in range(2)], axis=-1)
  room = reach - np.abs(start - view_centre)  # the object stays near the view
  centre = start + path * np.minimum(1.0, room / (np.abs(path).max(axis=0) + 1e-9))
  spin = rng.uniform(-0.004, 0.004)
  angle = rng.uniform(0, 2 * np.pi) + spin * steps + _sinusoids(rng, steps, 0.004, (60, 200), 1)
  return MovingObject(_spline(texture), (float(ry), float(rx)), float(rng.uniform(2.0, 5.0)),
                      centre, angle)


@dataclasses.dataclass(frozen=True)
class Scene:
  """Everything needed to render the high-rate frames of one sequence."""
  background: np.ndarray  # [3, H, W] spline coefficients
  centre: np.ndarray      # [2] scene (y, x) of the view centre
  camera: CameraPath
  objects: tuple[MovingObject, ...]
  grid: np.ndarray        # [2, height, width] pixel offsets from the view centre

  def render(self, step: int) -> np.ndarray:
    """The high-rate frame at `step`, uint8 [height, width, 3]."""
    coords = self.camera.scene_coords(step, self.grid, self.centre)
    frame = _sample(self.background, coords)
    for obj in self.objects:
      c, s = np.cos(obj.angle[step]), np.sin(obj.angle[step])
      dy, dx = coords[0] - obj.centre[step, 0], coords[1] - obj.centre[step, 1]
      u, v = c * dy + s * dx, -s * dy + c * dx  # object-local (y, x)
      norm = (np.abs(u / obj.radii[0]) ** obj.power
              + np.abs(v / obj.radii[1]) ** obj.power) ** (1.0 / obj.power)
      # Distance to the edge in pixels (approximately), softened over ~1.5 px.
      alpha = np.clip(0.5 - (norm - 1.0) * min(obj.radii) / 1.5, 0.0, 1.0)
      inside = alpha > 0
      if not inside.any():
        continue
      middle = (obj.coefs.shape[1] - 1) / 2
      colour = _sample(obj.coefs, np.stack([u[inside] + middle, v[inside] + middle]))
      a = alpha[inside][:, None]
      frame[inside] = (1.0 - a) * frame[inside] + a * colour
    return np.rint(np.clip(frame, 0.0, 1.0) * 255.0).astype(np.uint8)


def make_scene(rng: np.random.Generator, background: str, object_photos: list[str],
               num_steps: int, height: int, width: int) -> Scene:
  """A random scene over `background` with one object per name in `object_photos`."""
  steps = np.arange(num_steps, dtype=np.float64)
  camera = _camera_path(rng, steps)
  box = _view_box(camera, height, width)
  photo = PHOTOS[background]()
  extent = box[1] - box[0] + 8.0  # cubic support and rounding
  largest = float(min(photo.shape[0] / extent[0], photo.shape[1] / extent[1]))
  factor = rng.uniform(min(1.0, largest), min(2.2, largest))
  scene = _downscale(photo, factor)
  low = -box[0] + 4.0
  high = np.array(scene.shape[:2], float) - box[1] - 5.0
  centre = rng.uniform(low, np.maximum(low, high))
  objects = tuple(
      _moving_object(rng, PHOTOS[name](), steps, centre, height, width,
                     gray=name in GRAY_PHOTOS)
      for name in object_photos)
  grid = np.stack(np.meshgrid(np.arange(height) - (height - 1) / 2,
                              np.arange(width) - (width - 1) / 2, indexing="ij"))
  return Scene(_spline(scene), centre, camera, objects, grid)


# ----------------------------------------------------------------------------- sequences
@dataclasses.dataclass(frozen=True)
class SequencePlan:
  """One sequence to generate: its name, photographs and random stream."""
  split: str
  index: int
  name: str
  background: str
  objects: tuple[str, ...]


def plan_sequences(spec: DatasetSpec) -> list[SequencePlan]:
  """The sequences of both splits, photographs assigned (deterministic in spec.seed)."""
  plans = []
  for split_id, split in enumerate(SPLITS):
    photos = TRAIN_PHOTOS if split == "train" else TEST_PHOTOS
    object_photos = TRAIN_OBJECT_PHOTOS if split == "train" else TEST_OBJECT_PHOTOS
    count = spec.train_sequences if split == "train" else spec.test_sequences
    for index in range(count):
      rng = _rng(spec, split_id, index, stream=0)
      background = photos[index % len(photos)]
      others = [p for p in object_photos if p != background]
      order = rng.permutation(len(others))  # distinct photographs while there are enough
      objects = tuple(others[order[i % len(others)]] for i in range(rng.integers(1, 4)))
      plans.append(SequencePlan(split, index, f"seq{index:02d}_{background}", background,
                                objects))
  return plans


def _rng(spec: DatasetSpec, split_id: int, index: int, stream: int) -> np.random.Generator:
  return np.random.default_rng(np.random.SeedSequence([spec.seed, split_id, index, stream]))


def exposures(rng: np.random.Generator, spec: DatasetSpec) -> np.ndarray:
  """Odd exposure lengths [frames_per_sequence]: a per-sequence level, varied per frame."""
  levels = np.arange(spec.min_exposure, spec.max_exposure + 1, 2)
  base = rng.integers(len(levels))
  wobble = rng.choice([-1, 0, 0, 1], size=spec.frames_per_sequence)
  return levels[np.clip(base + wobble, 0, len(levels) - 1)]


def render_sequence(spec: DatasetSpec,
                    plan: SequencePlan) -> Iterator[synthesize.BlurredFrame]:
  """Yields a `synthesize.BlurredFrame` per video frame of `plan`."""
  rng = _rng(spec, SPLITS.index(plan.split), plan.index, stream=1)
  lengths = exposures(rng, spec)
  scene = make_scene(rng, plan.background, list(plan.objects),
                     spec.frames_per_sequence * spec.frame_interval, spec.height, spec.width)
  for frame, length in enumerate(lengths):
    middle = frame * spec.frame_interval + spec.frame_interval // 2
    window = np.stack([scene.render(step) for step in
                       range(middle - length // 2, middle + length // 2 + 1)])
    yield synthesize.blur_window(window)


# ----------------------------------------------------------------------------- on disk
def _marker(spec: DatasetSpec, plans: list[SequencePlan]) -> dict:
  return {
      "generator": GENERATOR,
      "version": GENERATOR_VERSION,
      "parameters": dataclasses.asdict(spec),
      "sequences": {split: {p.name: {"frames": spec.frames_per_sequence,
                                     "background": p.background, "objects": list(p.objects)}
                            for p in plans if p.split == split} for split in SPLITS},
  }





def read_marker(root: str | os.PathLike[str]) -> dict | None:
  """The marker of a default dataset at `root`, or None if there is none (or unreadable)."""
  try:
    marker = json.loads((Path(root) / MARKER).read_text())
  except (OSError, ValueError):
    return None
  return marker if isinstance(marker, dict) and marker.get("generator") == GENERATOR else None


def is_complete(root: str | os.PathLike[str], spec: DatasetSpec | None = None) -> bool:
  """True if `root` holds every file of a default dataset of this generator version
  (and of `spec`, when given)."""
  root = Path(root)
  marker = read_marker(root)
  if marker is None or marker.get("version") != GENERATOR_VERSION:
    return False
  if spec is not None and marker.get("parameters") != dataclasses.asdict(spec):
    return False
  try:
    for split, sequences in marker["sequences"].items():
      for name, info in sequences.items():
        names = {f"{i:06d}.png" for i in range(info["frames"])}
        for folder in synthesize.OUTPUT_DIRS:
          present = {p.name for p in (root / split / name / folder).iterdir()}
          if not names <= present:
            return False
  except (OSError, KeyError, TypeError, AttributeError):
    return False
  return True


def _not_generated(root: Path, marker: dict) -> list[str]:
  """Paths (relative to `root`, sorted) of the files and folders under `root` that its
  `marker` does not list as the generator's: ones a user added."""
  made = {MARKER}
  try:
    for split, sequences in marker["sequences"].items():
      made.add(split)
      for name, info in sequences.items():
        made.add(f"{split}/{name}")
        for folder in synthesize.OUTPUT_DIRS:
          made.add(f"{split}/{name}/{folder}")
          made.update(f"{split}/{name}/{folder}/{i:06d}.png" for i in range(info["frames"]))
  except (KeyError, TypeError, AttributeError):
    made = {MARKER}  # a marker that lists nothing: only the marker is the generator's
  added = []
  for folder, dirs, names in os.walk(root):
    for entry in dirs + names:
      relative = (Path(folder) / entry).relative_to(root).as_posix()
      if relative not in made:
        added.append(relative)
    dirs[:] = [d for d in dirs if (Path(folder) / d).relative_to(root).as_posix() in made]
  return sorted(added, key=files.natural_sort_key)


def _spec(seed: int, parameters: dict[str, int]) -> DatasetSpec:
  unknown = set(parameters) - {f.name for f in dataclasses.fields(DatasetSpec)}
  if unknown:
    raise DataError(f"unknown default data parameters: {', '.join(sorted(unknown))}")
  spec = DatasetSpec(seed=seed, **parameters)
  spec.validate()
  return spec


def make_default_dataset(out_dir: str | os.PathLike[str], *, seed: int = 0,
                         overwrite: bool = False, progress: bool = True,
                         **parameters: int) -> Path:
  """Builds the default dataset at `out_dir` (see the module docstring).

  Args:
    out_dir: destination; must not exist or be empty unless `overwrite`.
    seed: seed of every random choice; the same seed gives the same bytes.
    overwrite: replace an existing `out_dir` (only once the new one is complete).
    progress: print progress with ETA on stderr.
    **parameters: other `DatasetSpec` fields (height, width,
      frames_per_sequence, train_sequences, test_sequences, frame_interval,
      min_exposure, max_exposure).

  Returns:
    `out_dir` as a Path.

  Raises:
    DataError: for bad parameters, or an existing non-empty `out_dir` without
      `overwrite`.
  """
  out = Path(out_dir)
  spec = _spec(seed, parameters)
  if out.exists() and not out.is_dir():
    raise DataError(f"{out} exists and is not a folder")
  if out.is_dir() and any(out.iterdir()) and not overwrite:
    raise DataError(f"{out} exists and is not empty; remove it or choose another folder")
  out.parent.mkdir(parents=True, exist_ok=True)
  plans = plan_sequences(spec)
  meter = files.Progress(len(plans) * spec.frames_per_sequence, "default data",
                         log_interval_s=5) if progress else None
  partial = files.make_partial_folder(out)
  try:
    done = 0
    for plan in plans:
      folder = partial / plan.split / plan.name
      for name in synthesize.OUTPUT_DIRS:
        (folder / name).mkdir(parents=True)
      for index, result in enumerate(render_sequence(spec, plan)):
        for name in synthesize.OUTPUT_DIRS:
          image_io.write_image(folder / name / f"{index:06d}.png", getattr(result, name))
        done += 1
        if meter:
          meter.update(done)
    if meter:
      meter.finish()
    files.write_json_atomic(partial / MARKER, _marker(spec, plans), indent=1)
    files.replace_folder(partial, out)
  finally:
    shutil.rmtree(partial, ignore_errors=True)
  return out


def ensure_default_dataset(out_dir: str | os.PathLike[str], *, seed: int = 0,
                           progress: bool = True, **parameters: int) -> Path:
  """The default dataset at `out_dir`, built only if missing or incomplete.

  A complete dataset of this generator version and these parameters is left
  as it is. An incomplete or outdated one (its marker file present) is
  rebuilt, unless it holds files its marker does not list (ones a user added):
  then nothing is touched and DataError names them. A non-empty folder without
  a marker is not a default dataset and is never touched.

  Raises:
    DataError: if `out_dir` holds something else, or for bad parameters.
  """
  out = Path(out_dir)
  spec = _spec(seed, parameters)
  if is_complete(out, spec):
    return out
  marker = read_marker(out)
  if out.is_dir() and any(out.iterdir()) and marker is None:
    raise DataError(f"{out} is not empty and is not a default dataset (no {MARKER}); "
                    f"remove it or choose another folder")
  added = _not_generated(out, marker) if marker is not None else []
  if added:
    shown = ", ".join(added[:3]) + (f" and {len(added) - 3} more" if len(added) > 3 else "")
    raise DataError(f"{out}: the default dataset there must be rebuilt (other parameters, "
                    f"or generated files missing), but it also holds files the generator "
                    f"did not make ({shown}); move them out, or choose another "
                    f"config.data.root")
  return make_default_dataset(out, seed=seed, overwrite=True, progress=progress, **parameters)


# ----------------------------------------------------------------------------- example
def _psnr(a: np.ndarray, b: np.ndarray) -> float:
  mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
  return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-12)))


def example_image(root: str | os.PathLike[str], split: str = "test", rows: int = 2,
                  blur_dir: str = "blur_gamma") -> np.ndarray:
  """Blurry | sharp side by side for the blurriest frame of the first `rows` sequences.

  Returns:
    uint8 [rows * (H + 4) - 4, 2 * W + 4, 3] with white gaps.
  """
  sequences = layouts.find_sequences(root, "gopro", split, blur_dir=blur_dir)[:rows]
  tiles = []
  for sequence in sequences:
    pairs = [(image_io.read_image(b), image_io.read_image(s))
             for b, s in zip(sequence.blur_paths, sequence.sharp_paths)]
    blurry, sharp = min(pairs, key=lambda pair: _psnr(*pair))
    gap = np.full((blurry.shape[0], 4, 3), 255, np.uint8)
    tiles.append(np.concatenate([blurry, gap, sharp], axis=1))
  gap = np.full((4, tiles[0].shape[1], 3), 255, np.uint8)
  return np.concatenate([x for tile in tiles for x in (tile, gap)][:-1], axis=0)


# ----------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="python -m data_pipeline.default_data", formatter_class=HelpFormatter,
      description="Builds the embedded default dataset (GOPRO layout) from photographs\n"
                  "shipped with scikit-image, unless it is already complete.")
  parser.add_argument("--out", required=True, help="dataset folder, e.g. data/default")
  parser.add_argument("--seed", type=int, default=0, help="seed of every random choice "
                      "(the same seed gives the same bytes)")
  parser.add_argument("--example", default=None, metavar="PNG",
                      help="also write blurry | sharp frames of the test split here "
                      "(default: not written)")
  return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
  return build_parser().parse_args(argv)


def write(args: argparse.Namespace) -> None:
  """The dataset at --out (kept when complete) and the optional --example image."""
  start = time.monotonic()
  try:
    complete = is_complete(args.out, DatasetSpec(seed=args.seed))
    root = ensure_default_dataset(args.out, seed=args.seed)
    if complete:
      print(f"{root}: complete default dataset, left as it is")
    else:
      print(f"{root}: default dataset written in {time.monotonic() - start:.1f}s")
    if args.example:
      example = Path(args.example)
      example.parent.mkdir(parents=True, exist_ok=True)
      image_io.write_image(example, example_image(root))
      print(f"{example}: example written")
  except OSError as e:  # a read-only or full disk
    raise DataError(f"{e.filename or args.out}: cannot be written ({e.strerror or e})") from e


def main(argv: list[str] | None = None) -> int:
  """The command line; returns the exit status (0, 2 bad input, 130 Ctrl-C, 143 SIGTERM)."""
  args = parse_args(argv)
  return termination.run_command(lambda: write(args), (DataError,),
                                 "run the same command to finish the dataset")


if __name__ == "__main__":
  sys.exit(main())
