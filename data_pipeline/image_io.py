"""Reading and writing single frames as 8-bit RGB arrays.

Every frame enters the project as uint8 [H, W, 3] through `read_image`, which
applies a few documented conversions and refuses everything else:

  * grayscale ("L") and 1-bit images -> RGB by replicating the gray channel
    (1-bit pixels become 0 or 255);
  * palette images -> RGB through their palette (done by imageio/Pillow);
  * RGBA / gray+alpha whose alpha is fully opaque (255 everywhere) -> the
    colour channels (alpha dropped);
  * multi-image files (e.g. animated GIF) -> their first image.

Refused with `DataError` naming the file: missing files, files that cannot be
decoded (corrupt, truncated, empty, unknown format), 16-bit or floating-point
images (convert them to 8 bits first), images with real transparency, CMYK
and any other channel layout.
"""

from __future__ import annotations

import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import PIL.Image

from data_pipeline import pixels
from data_pipeline.safe_io import files
from data_pipeline.errors import DataError

# Pillow modes `read_image` converts to RGB; anything else is refused.
_ACCEPTED_MODES = ("1", "L", "P", "RGB", "RGBA", "LA", "PA")
# Suffixes `write_image` accepts (the format follows the suffix).
WRITE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# Modes that carry an alpha channel, whose opacity needs the pixels to check.
_ALPHA_MODES = ("RGBA", "LA", "PA")


def _refusal_for_mode(mode: str) -> str | None:
  """Why frames of Pillow `mode` are refused, or None when they are accepted."""
  if mode in _ACCEPTED_MODES:
    return None
  if mode.startswith("I;16"):
    return f"image is 16-bit (mode {mode}); convert it to 8-bit RGB"
  if mode == "I":
    return "image is 32-bit integer (mode I); convert it to 8-bit RGB"
  if mode == "F":
    return "image is floating-point (mode F); convert it to 8-bit RGB"
  if mode == "CMYK":
    return "image is CMYK; convert it to 8-bit RGB"
  return f"image has unsupported mode {mode!r}; convert it to 8-bit RGB"


def _stored_refusal(image: PIL.Image.Image) -> str | None:
  """Why an opened image is refused (mode, or samples of more than 8 bits), or None.

  Pillow opens 16-bit RGB(A) PNGs and TIFFs as 8-bit mode RGB(A), keeping only each
  sample's high byte; their raw mode (e.g. 'RGB;16B') still says 16 bits.
  """
  refusal = _refusal_for_mode(image.mode)
  if refusal:
    return refusal
  for tile in getattr(image, "tile", None) or ():
    args = tile.args if hasattr(tile, "args") else tile[3]
    rawmode = args if isinstance(args, str) else (
        args[0] if isinstance(args, tuple) and args and isinstance(args[0], str) else "")
    if ";16" in rawmode:
      return f"image is 16-bit (raw mode {rawmode}); convert it to 8-bit RGB"
  return None


def _opaque_colour(image: np.ndarray, path: Path) -> np.ndarray:
  """Drops a fully opaque alpha channel (last of 2 or 4); refuses transparency."""
  alpha = image[..., -1]
  if np.any(alpha != 255):
    raise DataError(
        f"{path}: image has transparent pixels (alpha < 255 in "
        f"{np.count_nonzero(alpha != 255)} pixels); flatten it to RGB first")
  return image[..., :-1]


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
  """Reads an image file as RGB.

  Args:
    path: an image file Pillow can read (PNG, JPEG, BMP, TIFF, WebP, GIF...).

  Returns:
    uint8 [H, W, 3], after the conversions in the module docstring.

  Raises:
    DataError: naming `path`, for every refused or unreadable file.
  """
  path = Path(path)
  if not path.is_file():
    raise DataError(f"{path}: image file not found")
  try:
    with PIL.Image.open(path) as header:
      refusal = _stored_refusal(header)
    if refusal:
      raise DataError(f"{path}: {refusal}")
    with iio.imopen(path, "r", plugin="pillow") as file:
      mode = file.metadata(index=0).get("mode", "")
      refusal = _refusal_for_mode(mode)
      if refusal:
        raise DataError(f"{path}: {refusal}")
      image = np.asarray(file.read(index=0))
  except DataError:
    raise
  except Exception as e:  # Pillow raises many types for corrupt files.
    raise DataError(
        f"{path}: cannot decode image (corrupt, truncated or not an image): "
        f"{e}") from e

  if image.dtype == np.bool_:
    image = image.astype(np.uint8) * 255
  if image.dtype != np.uint8:
    raise DataError(
        f"{path}: image has {image.dtype} pixels; convert it to 8-bit RGB")
  if image.ndim == 2:
    image = image[..., None]
  if image.ndim != 3:
    raise DataError(f"{path}: image has unexpected shape {image.shape}")
  channels = image.shape[-1]
  if channels in (2, 4):
    image = _opaque_colour(image, path)
    channels -= 1
  if channels == 1:
    image = np.repeat(image, 3, axis=-1)
  elif channels != 3:
    raise DataError(f"{path}: image has {channels} channels, expected 1-4")
  return np.ascontiguousarray(image)


def read_image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
  """(height, width) of an image, validated as far as cheaply possible.

  Reads the file header only, so it is fast, and refuses what the header
  shows `read_image` would refuse (missing, undecodable header, 16-bit,
  CMYK...). Images with an alpha channel are decoded in full to check that
  the alpha is opaque; a file with a valid header but corrupt pixel data
  passes here and fails later in `read_image`.

  Raises:
    DataError: naming `path`.
  """
  path = Path(path)
  if not path.is_file():
    raise DataError(f"{path}: image file not found")
  try:
    with PIL.Image.open(path) as image:
      mode, (width, height) = image.mode, image.size
      refusal = _stored_refusal(image)
  except Exception as e:  # Pillow raises many types for corrupt files.
    raise DataError(
        f"{path}: cannot decode image (corrupt, truncated or not an image): "
        f"{e}") from e
  if refusal:
    raise DataError(f"{path}: {refusal}")
  if mode in _ALPHA_MODES:
    read_image(path)
  return height, width


def write_image(path: str | os.PathLike[str], image: np.ndarray) -> None:
  """Writes uint8 [H, W, 3] to `path` atomically (format from the suffix).

  The suffix must be one of `WRITE_SUFFIXES`; PNG is lossless, JPEG is
  written with Pillow's default quality (75).

  The image is written to a temporary file in the same folder and renamed
  over `path`, so `path` is either absent, its old content, or complete.

  Raises:
    DataError: if `image` is not uint8 [H, W, 3] or the file cannot be
      written.
  """
  path = Path(path)
  image = np.asarray(image)
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
    raise DataError(
        f"{path}: can only write uint8 [H, W, 3] images, got {image.dtype} "
        f"{image.shape}")
  if path.suffix.lower() not in WRITE_SUFFIXES:
    raise DataError(
        f"{path}: cannot write images with suffix {path.suffix!r}; use one of "
        f"{', '.join(WRITE_SUFFIXES)}")
  if not path.parent.is_dir():
    raise DataError(f"{path}: output folder {path.parent} does not exist")
  try:
    with files.atomic_path(path, suffix=path.suffix) as temporary:
      iio.imwrite(temporary, image, plugin="pillow", extension=path.suffix)
  except Exception as e:
    raise DataError(f"{path}: cannot write image: {e}") from e


def to_float(image: np.ndarray) -> np.ndarray:
  """uint8 [..., 3] -> float32 in [0, 1] (x / 255)."""
  image = np.asarray(image)
  if image.dtype != np.uint8:
    raise DataError(f"to_float expects uint8 pixels, got {image.dtype}")
  return pixels.to_unit_float(image)
