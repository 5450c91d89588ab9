"""GOPRO-style motion blur from high-frame-rate sharp frames (Nah et al. 2017).

    python -m data_pipeline.synthesize --frames GOPRO_Large_all/train \
        --average 11 --downsample 960x540 --out GOPRO_960x540/train

`--frames` is one folder of frames (one sequence, named after the folder) or a
folder of such folders (one sequence each). Each sequence is cut into windows
of `--average` consecutive frames, back to back (frames 0..10 make output 0,
11..21 output 1, ...; the frames left over at the end are dropped), and every
window gives three 8-bit PNGs, numbered from 000000:

  OUT/<seq>/blur/NNNNNN.png        plain mean of the frames (8-bit values)
  OUT/<seq>/blur_gamma/NNNNNN.png  B = g(mean_k g^-1(S_k)), g(x) = x^(1/2.2) on
                                   [0, 1]: the mean in a linearised domain, like
                                   a long exposure of a camera with a gamma
                                   response (what the IFI-RNN paper used)
  OUT/<seq>/sharp/NNNNNN.png       the middle frame of the window (index
                                   average // 2), so `--average` must be odd

Both means are computed in float64 and rounded to the nearest 8-bit level.
`--downsample WxH` first resizes every source frame to W x H pixels with
`skimage.transform.resize(order=1, anti_aliasing=True)` (bilinear after a
Gaussian prefilter of sigma (scale - 1) / 2, the library's anti-aliasing) and
rounds it to 8 bits, so the averages and the sharp frame are of the
downsampled 8-bit frames; the paper averaged GOPRO's 1280x720 frames after
downsampling them to 960x540.

Everything is checked before anything is written (frames present and of one
size per sequence, enough frames for a window, outputs free). A sequence is
written to a hidden temporary folder in OUT and renamed to OUT/<seq> when
complete; an existing non-empty OUT/<seq> is replaced only with --overwrite, and only
if it holds nothing but blur/blur_gamma/sharp folders of numbered frames. OUT may not
hold --frames. Bad input prints `error: <message>` and exits with status 2; Ctrl-C
exits with 130, SIGTERM with 143, leaving no partial sequence behind.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import sys
import time
from collections.abc import Sequence as SequenceOf
from pathlib import Path

import numpy as np
import skimage.transform

from data_pipeline import image_io, layouts
from data_pipeline.safe_io import files, outputs
from data_pipeline.commandline import termination
from data_pipeline.commandline.console import HelpFormatter, plural
from data_pipeline.errors import DataError
from data_pipeline.safe_io.files import Progress

GAMMA = 2.2
OUTPUT_DIRS = ("blur", "blur_gamma", "sharp")
# g^-1 of every 8-bit level: the linear intensity (level / 255) ** 2.2.
_LINEAR_OF_LEVEL = (np.arange(256, dtype=np.float64) / 255.0) ** GAMMA


# ----------------------------------------------------------------------------- the recipe
@dataclasses.dataclass(frozen=True)
class BlurredFrame:
  """One synthesised training pair; every field is uint8 [H, W, 3]."""
  blur: np.ndarray
  blur_gamma: np.ndarray
  sharp: np.ndarray


def _check_window(frames: np.ndarray) -> np.ndarray:
  frames = np.asarray(frames)
  if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
    raise DataError(f"a window must be uint8 [K, H, W, 3] frames, got "
                    f"{frames.dtype} {frames.shape}")
  if frames.shape[0] < 1:
    raise DataError("a window needs at least one frame")
  return frames


def plain_average(frames: np.ndarray) -> np.ndarray:
  """The mean of uint8 [K, H, W, 3] frames, rounded to uint8 [H, W, 3]."""
  frames = _check_window(frames)
  mean = frames.sum(axis=0, dtype=np.float64) / frames.shape[0]
  return np.rint(mean).astype(np.uint8)


def gamma_average(frames: np.ndarray) -> np.ndarray:
  """g(mean_k g^-1(S_k)) of uint8 [K, H, W, 3] frames, rounded to uint8 [H, W, 3].

  g(x) = x ** (1 / 2.2) on intensities in [0, 1] (8-bit level / 255).
  """
  frames = _check_window(frames)
  linear = _LINEAR_OF_LEVEL[frames].sum(axis=0) / frames.shape[0]
  return np.rint(255.0 * linear ** (1.0 / GAMMA)).astype(np.uint8)


def blur_window(frames: np.ndarray) -> BlurredFrame:
  """Both blurs of an odd-length window of uint8 [K, H, W, 3] frames and its middle frame."""
  frames = _check_window(frames)
  if frames.shape[0] % 2 == 0:
    raise DataError(f"a window needs an odd number of frames to have a middle "
                    f"one, got {frames.shape[0]}")
  return BlurredFrame(blur=plain_average(frames), blur_gamma=gamma_average(frames),
                      sharp=frames[frames.shape[0] // 2].copy())


def resize_frame(frame: np.ndarray, height: int, width: int) -> np.ndarray:
  """Anti-aliased resize of uint8 [h, w, 3] to uint8 [height, width, 3] (see module doc)."""
  resized = skimage.transform.resize(
      frame.astype(np.float64) / 255.0, (height, width), order=1,
      mode="reflect", anti_aliasing=True)
  return np.rint(np.clip(resized, 0.0, 1.0) * 255.0).astype(np.uint8)


def parse_size(text: str) -> tuple[int, int]:
  """'960x540' (width x height) -> (height, width); DataError for anything else."""
  match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
  if not match or int(match[1]) < 1 or int(match[2]) < 1:
    raise DataError(f"bad size {text!r}: expected WIDTHxHEIGHT with positive "
                    f"integers, e.g. 960x540")
  return int(match[2]), int(match[1])


def check_average(average: int) -> int:
  """`average` if it is a valid window length (odd, >= 1); DataError otherwise."""
  if average < 1 or average % 2 == 0:
    raise DataError(f"--average must be an odd number >= 1 (the sharp frame is the "
                    f"middle one of the window), got {average}")
  return average


# ----------------------------------------------------------------------------- folders
@dataclasses.dataclass(frozen=True)
class SourceSequence:
  """High-frame-rate frames of one sequence, validated (one size, readable headers)."""
  name: str
  frames: tuple[Path, ...]
  height: int
  width: int


def find_source_sequences(frames_dir: str | os.PathLike[str]) -> list[SourceSequence]:
  """The sequences under `frames_dir` (a folder of frames, or of frame folders).

  Raises:
    DataError: if the folder is missing, holds neither frames nor frame
      folders, or a sequence has unreadable frames or frames of mixed sizes.
  """
  root = Path(frames_dir)
  if not root.is_dir():
    raise DataError(f"frames folder {root} not found")
  has_frames = any(path.is_file() and path.suffix.lower() in layouts.IMAGE_SUFFIXES
                   and not path.name.startswith(".") for path in root.iterdir())
  if has_frames:
    folders = [root]
  else:
    folders = sorted((path for path in root.iterdir()
                      if path.is_dir() and not path.name.startswith(".")),
                     key=lambda path: path.name)
    if not folders:
      raise DataError(f"{root}: no frames ({', '.join(layouts.IMAGE_SUFFIXES)}) and "
                      f"no sequence folders")
  sequences = []
  for folder in folders:
    sequence = layouts.frames_folder(folder)  # validates sizes from the headers
    height, width = image_io.read_image_size(sequence.blur_paths[0])
    sequences.append(SourceSequence(folder.name, sequence.blur_paths, height, width))
  return sequences


def _check_plan(sequences: SequenceOf[SourceSequence], average: int,
                size: tuple[int, int] | None, out: Path, overwrite: bool) -> None:
  """Refuses, before anything is written, what cannot be done as asked."""
  outputs.check_not_input(out, [s.frames[0].parent for s in sequences], flag="--out")
  outputs.check_parent(out)
  for sequence in sequences:
    if len(sequence.frames) < average:
      raise DataError(f"sequence {sequence.name}: has {len(sequence.frames)} frames, "
                      f"fewer than one window of --average {average}")
    if size and (size[0] > sequence.height or size[1] > sequence.width):
      raise DataError(
          f"sequence {sequence.name}: --downsample {size[1]}x{size[0]} is larger "
          f"than its {sequence.width}x{sequence.height} frames")
    target = out / sequence.name
    if target.exists() and not target.is_dir():
      raise DataError(f"output {target} exists and is not a folder")
    if outputs.exists(target) and not (target.is_dir() and not any(target.iterdir())):
      outputs.refuse_existing(target, overwrite)  # a dangling symlink too
    if target.is_dir():
      outputs.check_replaceable_sequence(target, OUTPUT_DIRS)
  if out.exists() and not out.is_dir():
    raise DataError(f"output {out} exists and is not a folder")


def _windows(sequence: SourceSequence, average: int,
             size: tuple[int, int] | None):
  """Yields uint8 [average, H, W, 3] windows of `sequence`, back to back."""
  for start in range(0, len(sequence.frames) - average + 1, average):
    frames = []
    for path in sequence.frames[start:start + average]:
      frame = image_io.read_image(path)
      if frame.shape[:2] != (sequence.height, sequence.width):
        raise DataError(f"sequence {sequence.name}: frame {path} is "
                        f"{frame.shape[1]}x{frame.shape[0]} but the first frame is "
                        f"{sequence.width}x{sequence.height}")
      frames.append(resize_frame(frame, *size) if size else frame)
    yield np.stack(frames)


def synthesize(frames_dir: str | os.PathLike[str], out: str | os.PathLike[str],
               average: int, *, downsample: tuple[int, int] | None = None,
               overwrite: bool = False, progress: bool = True) -> dict[str, int]:
  """Writes blur, blur_gamma and sharp frames of every sequence (see module doc).

  Args:
    frames_dir: a folder of frames, or a folder of frame folders.
    out: the output folder; OUT/<seq>/{blur,blur_gamma,sharp}/NNNNNN.png.
    average: frames per window (odd).
    downsample: (height, width) to resize the source frames to first, or None.
    overwrite: replace existing non-empty OUT/<seq> folders.
    progress: print progress with ETA on stderr.

  Returns:
    {sequence name: number of output frames}.

  Raises:
    DataError: for bad input (see module doc); nothing is written then.
  """
  average = check_average(average)
  sequences = find_source_sequences(frames_dir)
  out = Path(out)
  _check_plan(sequences, average, downsample, out, overwrite)
  try:
    out.mkdir(parents=True, exist_ok=True)
    for sequence in sequences:
      outputs.remove_stale_partials(out / sequence.name, is_folder=True)
  except OSError as e:
    raise DataError(f"output folder {out}: cannot be written ({e.strerror or e})") from None
  total = sum(len(s.frames) // average for s in sequences)
  meter = Progress(total, "synthesize", unit="windows", log_interval_s=5) if progress else None
  done, written = 0, {}
  for sequence in sequences:
    try:
      partial = files.make_partial_folder(out / sequence.name)
    except OSError as e:
      raise DataError(f"output folder {out}: cannot be written ({e.strerror or e})") from None
    try:
      for name in OUTPUT_DIRS:
        (partial / name).mkdir()
      count = 0
      for index, window in enumerate(_windows(sequence, average, downsample)):
        result = blur_window(window)
        for name in OUTPUT_DIRS:
          image_io.write_image(partial / name / f"{index:06d}.png", getattr(result, name))
        count, done = count + 1, done + 1
        if meter:
          meter.update(done)
      target = out / sequence.name
      try:
        if overwrite or (target.is_dir() and not any(target.iterdir())):
          files.replace_folder(partial, target)
        else:  # never replaces a folder another run made meanwhile
          files.rename_new(partial, target)
      except FileExistsError:
        raise DataError(f"{target}: appeared while this run was writing it (another run's "
                        f"output?); kept it; pass --overwrite to replace it") from None
      except OSError as e:
        raise DataError(f"output folder {out / sequence.name}: cannot move the result "
                        f"into place ({e.strerror or e})") from None
    finally:
      shutil.rmtree(partial, ignore_errors=True)
    written[sequence.name] = count
  if meter:
    meter.finish()
  return written


# ----------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="python -m data_pipeline.synthesize", formatter_class=HelpFormatter,
      description="GOPRO-style blur: averages windows of high-frame-rate frames into\n"
                  "OUT/<seq>/{blur,blur_gamma,sharp}/NNNNNN.png.")
  parser.add_argument("--frames", required=True,
                      help="a folder of frames (one sequence) or a folder of frame folders")
  parser.add_argument("--average", type=int, required=True,
                      help="frames per window (odd; GOPRO used 7 to 13)")
  parser.add_argument("--downsample", default=None, metavar="WxH",
                      help="resize the source frames first, e.g. 960x540 (default: "
                      "their own size)")
  parser.add_argument("--out", required=True, help="output folder")
  parser.add_argument("--overwrite", action="store_true",
                      help="replace existing OUT/<seq> folders this tool wrote")
  return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
  return build_parser().parse_args(argv)


def main(argv: list[str] | None = None) -> int:
  args = parse_args(argv)
  start = time.monotonic()
  written: dict[str, int] = {}

  def work() -> None:
    size = parse_size(args.downsample) if args.downsample is not None else None
    written.update(synthesize(args.frames, args.out, args.average, downsample=size,
                              overwrite=args.overwrite))

  status = termination.run_command(work, (DataError,),
                                   "sequences not finished were not written")
  if status:
    return status
  print(f"wrote {plural(sum(written.values()), 'frame')} of "
        f"{plural(len(written), 'sequence')} to "
        f"{args.out} in {time.monotonic() - start:.1f}s")
  return 0


if __name__ == "__main__":
  sys.exit(main())
