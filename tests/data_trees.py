"""Tiny dataset trees for the data_pipeline tests, written into tmp folders.

Frames encode where their pixels come from, so a test can check a crop,
flip or rotation exactly: sharp frame f of sequence s has pixel (y, x) =
(10 y, 8 x, 40 s + 6 f) (R, G, B; y < 24, x < 32, f < 6, s < 4), and its
blurry frame is 255 minus that.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import PIL.Image

HEIGHT, WIDTH, FRAMES = 24, 32, 6


def encoded_frame(sequence: int, frame: int, height: int = HEIGHT,
                  width: int = WIDTH) -> np.ndarray:
  """uint8 [H, W, 3] with pixel (y, x) = (10 y, 8 x, 40 sequence + 6 frame)."""
  y, x = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
  blue = np.full_like(y, 40 * sequence + 6 * frame)
  return np.stack([10 * y, 8 * x, blue], axis=-1).astype(np.uint8)


def save(path: Path, image: np.ndarray, **kwargs) -> Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  PIL.Image.fromarray(image).save(path, **kwargs)
  return path


def write_pair_folders(blur_folder: Path, sharp_folder: Path, sequence: int,
                       frames: int = FRAMES, suffix: str = ".png",
                       names: list[str] | None = None,
                       identical: bool = False) -> None:
  """Writes encoded sharp frames and their blur (255 - sharp, or identical)."""
  names = names or [f"{i:06d}{suffix}" for i in range(frames)]
  for index, name in enumerate(names):
    sharp = encoded_frame(sequence, index)
    save(sharp_folder / name, sharp)
    save(blur_folder / name, sharp if identical else 255 - sharp)


def gopro_tree(root: Path, train=("GOPR0001", "GOPR0002"), test=("GOPR0003",),
               frames: int = FRAMES) -> Path:
  """<root>/{train,test}/<seq>/{blur,blur_gamma,sharp}/NNNNNN.png."""
  for split, names in (("train", train), ("test", test)):
    for number, name in enumerate(names):
      folder = root / split / name
      write_pair_folders(folder / "blur", folder / "sharp", number, frames)
      write_pair_folders(folder / "blur_gamma", folder / "sharp", number,
                         frames, identical=True)
  return root


def dvd_tree(root: Path, names=("IMG_0003", "IMG_0001", "720p_240fps_2",
                                "zoo"), frames: int = FRAMES) -> Path:
  """<root>/quantitative_datasets/<seq>/{input,GT}/NNNNN.jpg (JPEG, 4:2:0 chroma)."""
  for number, name in enumerate(names):
    folder = root / "quantitative_datasets" / name
    for index in range(frames):
      sharp = encoded_frame(number, index)
      save(folder / "GT" / f"{index:05d}.jpg", sharp, quality=95)
      save(folder / "input" / f"{index:05d}.jpg", 255 - sharp, quality=95)
  return root


def bsd_tree(root: Path, exposures=("BSD_1ms8ms", "BSD_2ms16ms"),
             frames: int = FRAMES) -> Path:
  """<root>/BSD_*/{train,valid,test}/<seq>/{Blur,Sharp}/RGB/NNNNNNNN.png."""
  for exposure in exposures:
    for split in ("train", "valid", "test"):
      for number, name in enumerate(("000", "001")):
        folder = root / exposure / split / name
        write_pair_folders(folder / "Blur" / "RGB", folder / "Sharp" / "RGB",
                           number, frames,
                           names=[f"{i:08d}.png" for i in range(frames)])
  return root


def generic_tree(root: Path, names=("walk", "bike"),
                 frames: int = FRAMES) -> Path:
  """<root>/<seq>/{blur,sharp}/<n>.png with unpadded numbers."""
  for number, name in enumerate(names):
    write_pair_folders(root / name / "blur", root / name / "sharp", number,
                       names=[f"{i}.png" for i in range(frames)])
  return root
