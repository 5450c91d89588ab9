"""Streaming deblur holds a bounded number of frames, whatever the video's length.

Checked exactly, in-process: while deblur writes frame t, it has decoded frame t+1 (it
runs one frame ahead) and no more, and no decoded input frame before t and no written
frame before t is still alive. Peak memory itself is measured by
`python -m ifirnn_jax.benchmark --mode memory` (docs/benchmarks.md), not asserted here.
"""

import weakref
from pathlib import Path

import jax
import numpy as np
import pytest

import ifirnn_jax as ifr
from data_pipeline.video import FrameSink
from ifirnn_jax import deblur

REPO = Path(__file__).resolve().parents[1]
HEIGHT, WIDTH, FRAMES = 160, 240, 150


def synthetic_frames(count: int) -> list[np.ndarray]:
  """uint8 [H, W, 3] frames of moving gradients."""
  y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
  return [np.stack([(3 * x + 5 * t) % 256, (2 * y + 3 * t) % 256, (x + y + 7 * t) % 256],
                   axis=-1).astype(np.uint8) for t in range(count)]


class TrackedSource:
  """A frame source whose yielded frames are watched through weak references."""

  def __init__(self, source):
    self.source = source
    self.yielded = []  # weakref.ref per frame, in order

  def __getattr__(self, name):
    return getattr(self.source, name)

  def __enter__(self):
    return self

  def __exit__(self, *exc_info):
    self.source.close()

  def __iter__(self):
    for frame in self.source:
      self.yielded.append(weakref.ref(frame))
      yield frame


@pytest.mark.parametrize("compare", [False, True])
def test_deblur_releases_each_frame_before_it_writes_the_next(tmp_path, monkeypatch, compare):
  count, height, width = 24, 16, 24
  model = ifr.IFIRNN(cells=1, iterations=1, n1=4, n2=6, n3=8, nh=4, num_resblocks=1)
  weights = ifr.save_weights(model.init(jax.random.key(0)), tmp_path / "tiny.safetensors",
                             model=model)
  video = tmp_path / "in.mp4"
  with FrameSink(video, fps=30) as sink:
    for frame in synthetic_frames(count):
      sink.write(np.ascontiguousarray(frame[:height, :width]))

  sources = []
  real_open_frames = deblur.open_frames

  def tracked_open_frames(path):
    sources.append(TrackedSource(real_open_frames(path)))
    return sources[-1]
  monkeypatch.setattr(deblur, "open_frames", tracked_open_frames)

  written = []  # weakref.ref per frame given to the sink
  alive = []  # (inputs before t alive, written frames before t alive) at write t
  ahead = []  # frames decoded beyond t at write t
  real_write = FrameSink.write

  def write(self, frame):
    inputs, t = sources[0].yielded, self.num_written
    ahead.append(len(inputs) - (t + 1))
    alive.append((sum(r() is not None for r in inputs[:t]),
                  sum(r() is not None for r in written)))
    written.append(weakref.ref(frame))
    real_write(self, frame)
  monkeypatch.setattr(FrameSink, "write", write)

  status = deblur.main(["--input", str(video), "--output", str(tmp_path / "out"),
                        "--weights", str(weights)] + (["--compare"] if compare else []))
  assert status == 0
  assert len(alive) == count
  assert alive == [(0, 0)] * count, alive
  # Frame t+1 was drawn (and its step dispatched) before output t was written.
  assert ahead == [1] * (count - 1) + [0], ahead
