"""Tile grid, blend weights, split/merge; tiled deblurring agrees with whole frames;
the command's 8-bit frames equal the host rounding of the float frames."""

import jax
import numpy as np
import pytest

import ifirnn_jax as ifr
from ifirnn_jax import deblur
from ifirnn_jax.evaluation import metrics, tiling
from ifirnn_jax.deblur import deblur_frames
from tiny_models import tiny_params


@pytest.mark.parametrize("size,tile,overlap,want", [
    (100, 128, 16, (0,)),                    # smaller than a tile: one tile
    (128, 128, 16, (0,)),
    (160, 64, 16, (0, 48, 96)),              # stride 48, last tile ends at 160
    (150, 64, 16, (0, 48, 86)),              # last tile moved back to end at 150
    (100, 50, 0, (0, 50)),
])
def test_tile_starts(size, tile, overlap, want):
  starts = tiling.tile_starts(size, tile, overlap)
  assert starts == want
  assert starts[-1] + min(tile, size) == size
  gaps = np.diff(starts)
  assert np.all(gaps <= tile - overlap)  # neighbours overlap by >= overlap


def test_blend_weights_partition_of_unity_and_ramp_shape():
  grid = tiling.make_grid(70, 150, tile_size=64, overlap=16)
  assert (grid.tops, grid.lefts) == ((0, 6), (0, 48, 86))
  weights = tiling.blend_weights(grid)
  assert weights.shape == (6, 64, 64, 1) and np.all(weights > 0)
  total = np.zeros((70, 150))
  for (top, left), w in zip(grid.boxes(), weights[..., 0]):
    total[top:top + 64, left:left + 64] += w
  np.testing.assert_allclose(total, 1.0, rtol=0, atol=1e-6)
  # Between the first two columns the tiles overlap by exactly 16 pixels, where the
  # raised-cosine ramps cross-fade: sin^2 rising in tile 2 (row 0, away from the
  # vertical overlap), symmetric about 0.5.
  rise = np.sin(0.5 * np.pi * (np.arange(16) + 0.5) / 16) ** 2
  np.testing.assert_allclose(weights[1, 0, :16, 0], rise, rtol=1e-6)
  np.testing.assert_allclose(weights[0, 0, 48:64, 0], 1 - rise, rtol=1e-6)
  assert np.all(weights[0, 0, :48, 0] == 1.0)  # the frame border keeps full weight


def test_split_merge_identity_is_exact():
  rng = np.random.default_rng(0)
  frame = rng.random((70, 150, 3), dtype=np.float32)
  grid = tiling.make_grid(70, 150, tile_size=64, overlap=16)
  tiles = tiling.split(frame, grid)
  assert tiles.shape == (6, 64, 64, 3)
  np.testing.assert_array_equal(tiles[4], frame[6:70, 48:112])
  merged = tiling.merge(tiles, grid)
  np.testing.assert_allclose(merged, frame, rtol=0, atol=1e-6)  # float rounding only
  np.testing.assert_array_equal(merged[:6, :48], frame[:6, :48])  # one tile: bit-exact


def test_single_tile_grid_is_the_frame():
  grid = tiling.make_grid(40, 60, tile_size=64, overlap=16)
  assert grid.num_tiles == 1 and (grid.tile_height, grid.tile_width) == (40, 60)
  frame = np.random.default_rng(1).random((40, 60, 3), dtype=np.float32)
  np.testing.assert_array_equal(tiling.merge(tiling.split(frame, grid), grid), frame)


@pytest.mark.parametrize("tile_size,overlap", [(4, 0), (64, 33), (64, -1), (64.0, 8)])
def test_make_grid_rejects_bad_values(tile_size, overlap):
  with pytest.raises(ValueError, match="tile"):
    tiling.make_grid(100, 100, tile_size, overlap)


def test_split_merge_reject_wrong_sizes():
  grid = tiling.make_grid(70, 150, tile_size=64, overlap=16)
  with pytest.raises(ValueError, match="grid"):
    tiling.split(np.zeros((70, 140, 3)), grid)
  with pytest.raises(ValueError, match="grid"):
    tiling.merge(np.zeros((5, 64, 64, 3)), grid)


def test_tiled_deblur_agrees_with_whole_frames():
  """Tiles with a wide overlap give nearly the whole-frame result (no visible seams)."""
  model = ifr.IFIRNN(cells=2, iterations=2, n1=4, n2=6, n3=8, nh=4, num_resblocks=1)
  params = tiny_params(model)
  rng = np.random.default_rng(0)
  # A smooth random video (so the network's output is not dominated by noise).
  base = rng.random((4, 12, 20, 3))
  video = np.kron(base, np.ones((1, 8, 8, 1))).astype(np.float32)  # [4, 96, 160, 3]
  whole = np.stack(list(deblur_frames(model, params, video)))
  np.testing.assert_allclose(whole, model.deblur(params, video), rtol=0, atol=1e-5)
  grid = tiling.make_grid(96, 160, tile_size=96, overlap=40)
  assert grid.num_tiles > 1
  tiled = np.stack(list(deblur_frames(model, params, video, grid=grid)))
  diff = np.abs(tiled - whole)
  assert np.abs(whole - video).mean() > 0.01  # the network does change the frames
  # Measured: mean 4e-6, max 1e-4; butting tiles without overlap give max 0.035.
  assert diff.mean() < 1e-4 and diff.max() < 2e-3, (diff.mean(), diff.max())


def test_uint8_frames_equal_the_host_rounding_of_the_float_frames():
  """as_uint8 (rounded on the device for whole frames, on the host after merging tiles)
  gives exactly metrics.to_uint8_host of the float outputs; a non-finite output raises
  NonFiniteOutput naming its frame."""
  model = ifr.IFIRNN(cells=1, iterations=2, n1=4, n2=6, n3=8, nh=4, num_resblocks=1)
  params = tiny_params(model)
  rng = np.random.default_rng(1)
  video = (rng.random((5, 40, 56, 3)) * 255).astype(np.uint8)
  for grid in (None, tiling.make_grid(40, 56, tile_size=32, overlap=8)):
    floats = list(deblur_frames(model, params, video, grid=grid))
    frames = list(deblur_frames(model, params, video, grid=grid, as_uint8=True))
    assert len(frames) == len(video) and all(f.dtype == np.uint8 for f in frames)
    expected = [metrics.to_uint8_host(f) for f in floats]
    assert any(np.any((f < 0) | (f > 1)) for f in floats)  # the clipping is exercised
    for got, want in zip(frames, expected):
      np.testing.assert_array_equal(got, want)
  broken = jax.tree.map(lambda p: p * np.float32(np.inf), params)
  with pytest.raises(deblur.NonFiniteOutput, match="at frame 1$"):
    list(deblur_frames(model, broken, video, as_uint8=True))
