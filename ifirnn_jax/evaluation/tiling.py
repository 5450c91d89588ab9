"""Overlapping spatial tiles for frames too large to deblur whole.

    grid = make_grid(height, width, tile_size=512, overlap=32)
    tiles = split(frame, grid)                    # [N, th, tw, C], all tiles one size
    frame = merge(process(tiles), grid)           # [H, W, C], seamless

Tiles start every `tile_size - overlap` pixels; the last tile of a row or column is
moved back to end at the frame's edge, so every tile has the same size (one compiled
program) and neighbours overlap by at least `overlap` pixels. In `merge` each tile is
weighted by a raised-cosine ramp that rises over its first `overlap` pixels and falls
over its last `overlap` pixels on every side that has a neighbour (sides on the frame's
border keep weight 1); the weights are normalised to sum to 1 at every pixel. Where
two ramps meet exactly, sin^2 + cos^2 = 1 makes the blend a cross-fade; where tiles
overlap more, the normalisation averages them. Pure numpy functions, no state.
"""

from __future__ import annotations

import dataclasses

import numpy as np

MIN_TILE_SIZE = 8  # pixels


@dataclasses.dataclass(frozen=True)
class TileGrid:
  """Where the tiles lie in a height x width frame.

  tops, lefts: tile row and column offsets in pixels; tile (i, j) covers
    [tops[i], tops[i] + tile_height) x [lefts[j], lefts[j] + tile_width).
  overlap: blending ramp width in pixels.
  """

  height: int
  width: int
  tile_height: int
  tile_width: int
  tops: tuple[int, ...]
  lefts: tuple[int, ...]
  overlap: int

  @property
  def num_tiles(self) -> int:
    return len(self.tops) * len(self.lefts)

  def boxes(self) -> list[tuple[int, int]]:
    """(top, left) of every tile, row-major: the order of `split` and `merge`."""
    return [(top, left) for top in self.tops for left in self.lefts]


def tile_starts(size: int, tile: int, overlap: int) -> tuple[int, ...]:
  """Offsets of tiles of length `tile` covering [0, size), neighbours overlapping >= overlap."""
  if size <= tile:
    return (0,)
  stride = tile - overlap
  count = -(-(size - tile) // stride) + 1  # ceil((size - tile) / stride) + 1
  return tuple(min(i * stride, size - tile) for i in range(count))


def make_grid(height: int, width: int, tile_size: int, overlap: int) -> TileGrid:
  """Tiles of tile_size x tile_size (smaller only where the frame is) over the frame.

  Raises:
    ValueError: if tile_size < 8 or overlap is not in [0, tile_size / 2].
  """
  if (isinstance(tile_size, bool) or not isinstance(tile_size, int)
      or tile_size < MIN_TILE_SIZE):
    raise ValueError(f"tile size must be an integer >= {MIN_TILE_SIZE}, got {tile_size!r}")
  if (isinstance(overlap, bool) or not isinstance(overlap, int)
      or not 0 <= 2 * overlap <= tile_size):
    raise ValueError(f"tile overlap must be an integer in [0, tile size / 2] = "
                     f"[0, {tile_size // 2}], got {overlap!r}")
  tile_height, tile_width = min(tile_size, height), min(tile_size, width)
  return TileGrid(height, width, tile_height, tile_width,
                  tile_starts(height, tile_height, overlap),
                  tile_starts(width, tile_width, overlap), overlap)


def _ramp_1d(length: int, start: int, size: int, overlap: int) -> np.ndarray:
  """Weights along one axis of a tile at `start` of `length` in an axis of `size`."""
  weights = np.ones(length, np.float64)
  if overlap == 0:
    return weights
  # Raised cosine sampled at pixel centres: strictly inside (0, 1), and
  # rise[k] + rise[overlap - 1 - k] = 1.
  rise = np.sin(0.5 * np.pi * (np.arange(overlap) + 0.5) / overlap) ** 2
  if start > 0:
    weights[:overlap] *= rise
  if start + length < size:
    weights[length - overlap:] *= rise[::-1]
  return weights


def blend_weights(grid: TileGrid) -> np.ndarray:
  """[N, tile_height, tile_width, 1] float32 weights; at every pixel they sum to 1."""
  raw = [np.outer(_ramp_1d(grid.tile_height, top, grid.height, grid.overlap),
                  _ramp_1d(grid.tile_width, left, grid.width, grid.overlap))
         for top, left in grid.boxes()]
  total = np.zeros((grid.height, grid.width), np.float64)
  for (top, left), w in zip(grid.boxes(), raw):
    total[top:top + grid.tile_height, left:left + grid.tile_width] += w
  normalised = [w / total[top:top + grid.tile_height, left:left + grid.tile_width]
                for (top, left), w in zip(grid.boxes(), raw)]
  return np.stack(normalised)[..., None].astype(np.float32)


def split(frame: np.ndarray, grid: TileGrid) -> np.ndarray:
  """frame [H, W, C] -> tiles [N, tile_height, tile_width, C] (row-major)."""
  if frame.shape[:2] != (grid.height, grid.width):
    raise ValueError(f"frame is {frame.shape[1]}x{frame.shape[0]}, the grid was made "
                     f"for {grid.width}x{grid.height}")
  return np.stack([frame[top:top + grid.tile_height, left:left + grid.tile_width]
                   for top, left in grid.boxes()])


def merge(tiles: np.ndarray, grid: TileGrid, weights: np.ndarray | None = None) -> np.ndarray:
  """tiles [N, tile_height, tile_width, C] -> frame [H, W, C] float32, blended.

  `weights` from `blend_weights(grid)` (computed here if None; pass them when merging
  many frames on one grid).
  """
  expected = (grid.num_tiles, grid.tile_height, grid.tile_width)
  if tuple(tiles.shape[:3]) != expected:
    raise ValueError(f"tiles have shape {tuple(tiles.shape)}, the grid needs {expected} + (C,)")
  if weights is None:
    weights = blend_weights(grid)
  frame = np.zeros((grid.height, grid.width, tiles.shape[-1]), np.float32)
  for (top, left), tile, w in zip(grid.boxes(), np.asarray(tiles, np.float32), weights):
    frame[top:top + grid.tile_height, left:left + grid.tile_width] += w * tile
  return frame
