"""Finding paired blurry/sharp frame sequences in the datasets' folder layouts.

    sequences = find_sequences("GOPRO_Large", "gopro", "train",
                               blur_dir="blur_gamma", clip_length=12)
    for seq in sequences:
      print(seq.name, seq.num_frames, seq.blur_paths[0], seq.sharp_paths[0])

Layouts (frames are .png, .jpg, .jpeg or .bmp files; blurry and sharp frames
are paired by file name, and frames are ordered by file name with numbers
compared as numbers, so "2.png" comes before "10.png"):

  gopro    <root>/{train,test}/<seq>/{blur|blur_gamma, sharp}/NNNNNN.png
  dvd      <root>[/quantitative_datasets]/<seq>/{input, GT}/NNNNN.jpg; split
           "test" is the 10 sequences of `DVD_TEST_SEQUENCES` (those present),
           "train" every other sequence, None all of them.
  bsd      <root>/{train,valid,test}/<seq>/{Blur,Sharp}/RGB/NNNNNNNN.png with
           <root> one BSD_* folder, or <root>/BSD_*/{train,...}/... with
           <root> the folder holding several (names become "BSD_x/<seq>").
  generic  <root>[/<split>]/<seq>/{blur, sharp}/*

`frames_folder` wraps one folder of frames without ground truth.

Every sequence is validated before it is returned (file headers only, so it is
fast): matching blur/sharp file names, one frame size per sequence, the same
size for blur and sharp, readable 8-bit images, and at least `clip_length`
frames. Problems raise `DataError` naming the sequence and file.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from data_pipeline import image_io
from data_pipeline.errors import DataError
from data_pipeline.safe_io.files import natural_sort_key

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
LAYOUTS = ("gopro", "dvd", "bsd", "generic")
GOPRO_BLUR_DIRS = ("blur", "blur_gamma")
# The DVD test split of Su et al. (2017), used by the paper's Table 2.
DVD_TEST_SEQUENCES = (
    "IMG_0030", "IMG_0049", "IMG_0021", "720p_240fps_2", "IMG_0032",
    "IMG_0033", "IMG_0031", "IMG_0003", "IMG_0039", "IMG_0037")

_SPLITS = {
    "gopro": ("train", "test"),
    "dvd": ("train", "test", None),
    "bsd": ("train", "valid", "test"),
}


@dataclasses.dataclass(frozen=True)
class Sequence:
  """One video as frame files.

  Attributes:
    name: the sequence's name (its folder name, unique within a dataset).
    blur_paths: the blurry (input) frames, in temporal order.
    sharp_paths: the sharp frames, same length and file names as
      `blur_paths`, or None when there is no ground truth.
  """
  name: str
  blur_paths: tuple[Path, ...]
  sharp_paths: tuple[Path, ...] | None = None

  @property
  def num_frames(self) -> int:
    return len(self.blur_paths)

  @property
  def frame_names(self) -> tuple[str, ...]:
    """File names of the frames ("000047.png"), for naming outputs."""
    return tuple(path.name for path in self.blur_paths)


def _frame_files(folder: Path, sequence_name: str) -> list[Path]:
  """The image files of `folder`, naturally sorted; DataError if none."""
  if not folder.is_dir():
    raise DataError(f"sequence {sequence_name}: folder {folder} not found")
  files = [path for path in folder.iterdir()
           if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
           and not path.name.startswith(".")]
  if not files:
    raise DataError(
        f"sequence {sequence_name}: no frames ({', '.join(IMAGE_SUFFIXES)}) "
        f"in {folder}")
  return sorted(files, key=lambda path: natural_sort_key(path.name))


def _paired_sequence(name: str, blur_folder: Path,
                     sharp_folder: Path) -> Sequence:
  """A sequence whose blur and sharp files are paired by file name."""
  blur = _frame_files(blur_folder, name)
  sharp = _frame_files(sharp_folder, name)
  blur_names = [path.name for path in blur]
  sharp_names = [path.name for path in sharp]
  if blur_names != sharp_names:
    blur_set, sharp_set = set(blur_names), set(sharp_names)
    only_blur = [n for n in blur_names if n not in sharp_set]
    only_sharp = [n for n in sharp_names if n not in blur_set]
    raise DataError(
        f"sequence {name}: blurry and sharp frames do not match: "
        f"{len(blur)} in {blur_folder}, {len(sharp)} in {sharp_folder}; "
        f"first only in blur: {only_blur[0] if only_blur else 'none'}, "
        f"first only in sharp: {only_sharp[0] if only_sharp else 'none'}")
  return Sequence(name, tuple(blur), tuple(sharp))


def validate_sequence(sequence: Sequence,
                      clip_length: int | None = None) -> tuple[int, int]:
  """Checks a sequence's frames from their headers; returns (height, width).

  Raises:
    DataError: naming the sequence and file, if the sequence is empty or
      shorter than `clip_length`, a file is missing or unreadable, frames
      differ in size, or blur and sharp lengths differ.
  """
  name = sequence.name
  if not sequence.blur_paths:
    raise DataError(f"sequence {name}: has no frames")
  if clip_length is not None and sequence.num_frames < clip_length:
    raise DataError(
        f"sequence {name}: has {sequence.num_frames} frames, fewer than the "
        f"clip length {clip_length}")
  if (sequence.sharp_paths is not None
      and len(sequence.sharp_paths) != sequence.num_frames):
    raise DataError(
        f"sequence {name}: {sequence.num_frames} blurry frames but "
        f"{len(sequence.sharp_paths)} sharp frames")
  size = image_io.read_image_size(sequence.blur_paths[0])
  for index, blur_path in enumerate(sequence.blur_paths):
    blur_size = image_io.read_image_size(blur_path) if index else size
    if blur_size != size:
      raise DataError(
          f"sequence {name}: frame {blur_path} is {blur_size[0]}x"
          f"{blur_size[1]} (HxW) but the first frame is {size[0]}x{size[1]}")
    if sequence.sharp_paths is not None:
      sharp_path = sequence.sharp_paths[index]
      sharp_size = image_io.read_image_size(sharp_path)
      if sharp_size != blur_size:
        raise DataError(
            f"sequence {name}: sharp frame {sharp_path} is {sharp_size[0]}x"
            f"{sharp_size[1]} (HxW) but its blurry frame {blur_path} is "
            f"{blur_size[0]}x{blur_size[1]}")
  return size


def _subfolders(folder: Path) -> list[Path]:
  return sorted((path for path in folder.iterdir()
                 if path.is_dir() and not path.name.startswith(".")),
                key=lambda path: natural_sort_key(path.name))


def _require_folder(folder: Path, what: str) -> Path:
  if not folder.is_dir():
    raise DataError(f"{what} folder {folder} not found")
  return folder


def _gopro(root: Path, split: str, blur_dir: str) -> list[Sequence]:
  if blur_dir not in GOPRO_BLUR_DIRS:
    raise DataError(
        f"gopro blur_dir must be one of {GOPRO_BLUR_DIRS}, got {blur_dir!r}")
  split_folder = _require_folder(root / split, f"gopro {split} split")
  return [_paired_sequence(folder.name, folder / blur_dir, folder / "sharp")
          for folder in _subfolders(split_folder)]


def _dvd(root: Path, split: str | None) -> list[Sequence]:
  if (root / "quantitative_datasets").is_dir():
    root = root / "quantitative_datasets"
  folders = _subfolders(root)
  if split == "test":
    folders = [f for f in folders if f.name in DVD_TEST_SEQUENCES]
  elif split == "train":
    folders = [f for f in folders if f.name not in DVD_TEST_SEQUENCES]
  return [_paired_sequence(folder.name, folder / "input", folder / "GT")
          for folder in folders]


def _bsd(root: Path, split: str) -> list[Sequence]:
  if (root / split).is_dir():  # root is one BSD_* folder.
    split_folders = [("", root / split)]
  else:  # root holds several BSD_* folders.
    split_folders = [(f"{folder.name}/", folder / split)
                     for folder in _subfolders(root)
                     if folder.name.startswith("BSD_")]
    if not split_folders:
      raise DataError(
          f"bsd {split} split folder not found: neither {root / split} nor "
          f"{root}/BSD_*/{split} exists")
  sequences = []
  for prefix, split_folder in split_folders:
    _require_folder(split_folder, f"bsd {split} split")
    sequences += [
        _paired_sequence(prefix + folder.name, folder / "Blur" / "RGB",
                         folder / "Sharp" / "RGB")
        for folder in _subfolders(split_folder)]
  return sequences


def _generic(root: Path, split: str | None) -> list[Sequence]:
  folder = root if split is None else _require_folder(
      root / split, f"{split} split")
  return [_paired_sequence(sub.name, sub / "blur", sub / "sharp")
          for sub in _subfolders(folder)]


def find_sequences(root: str | os.PathLike[str], layout: str,
                   split: str | None = None, *, blur_dir: str = "blur",
                   clip_length: int | None = None) -> list[Sequence]:
  """Finds and validates the paired sequences of a dataset.

  Args:
    root: the dataset folder (see the module docstring for each layout).
    layout: one of `LAYOUTS`.
    split: "train" or "test" (gopro, dvd), "train", "valid" or "test" (bsd);
      None for every dvd sequence or for a generic root without splits.
    blur_dir: gopro only: "blur" or "blur_gamma" (the paper used the latter).
    clip_length: if given, every sequence must have at least this many frames.

  Returns:
    The sequences sorted by name; each is validated by `validate_sequence`.

  Raises:
    DataError: for a missing folder, an unknown layout or split, no
      sequences, or any sequence that fails validation.
  """
  root = _require_folder(Path(root), "dataset")
  if layout not in LAYOUTS:
    raise DataError(f"unknown dataset layout {layout!r}; use one of {LAYOUTS}")
  if layout in _SPLITS and split not in _SPLITS[layout]:
    raise DataError(
        f"{layout} split must be one of {_SPLITS[layout]}, got {split!r}")
  if layout == "gopro":
    sequences = _gopro(root, split, blur_dir)
  elif layout == "dvd":
    sequences = _dvd(root, split)
  elif layout == "bsd":
    sequences = _bsd(root, split)
  else:
    sequences = _generic(root, split)
  if not sequences:
    raise DataError(
        f"no sequences found in {root} (layout {layout}, split {split})")
  for sequence in sequences:
    validate_sequence(sequence, clip_length)
  return sorted(sequences, key=lambda s: natural_sort_key(s.name))


def frames_folder(path: str | os.PathLike[str]) -> Sequence:
  """A folder of frames without ground truth, as a validated Sequence.

  The frames (image files of `IMAGE_SUFFIXES`, ordered by file name with
  numbers compared as numbers) become `blur_paths`; `sharp_paths` is None.

  Raises:
    DataError: if the folder is missing or has no frames, or frames are
      unreadable or differ in size.
  """
  folder = _require_folder(Path(path), "frames")
  sequence = Sequence(folder.name, tuple(_frame_files(folder, folder.name)))
  validate_sequence(sequence)
  return sequence
