"""Streaming deblur: peak memory does not grow with the video's length.

`python -m ifirnn_jax.deblur` runs in a child process twice on one 150-frame video,
once stopped after 15 frames. At 160x240, holding the 135 extra float32 output frames
would add about 62 MB (some 18% of the ~340 MB a JAX process needs); the allowance is
10%.

Each child's peak resident set size is read by a small wrapper process, from its
RUSAGE_CHILDREN: the child's ru_maxrss also counts the memory of the process it was
spawned from (vfork shares it until exec), so spawning deblur straight from this test
process would report this (large) process's peak instead.

The bound behind it is also checked exactly, in-process: while deblur writes frame t,
no decoded input frame before t and no written frame before t is still alive.
"""

import subprocess
import sys
import weakref
from pathlib import Path

import imageio.v3 as iio
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


# Runs argv[2:], then writes its peak RSS (KiB) to argv[1]; exits with its status.
_PEAK_RSS_WRAPPER = """
import resource, subprocess, sys
status = subprocess.call(sys.argv[2:])
with open(sys.argv[1], "w") as f:
  f.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(status)
"""


def run_deblur(args: list[str], log: Path) -> tuple[int, float]:
  """Runs the deblur CLI in a child process; returns (exit status, its peak RSS in MiB)."""
  peak = log.with_suffix(".peak")
  with open(log, "wb") as output:
    result = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS_WRAPPER, str(peak),
         sys.executable, "-m", "ifirnn_jax.deblur", *args],
        cwd=REPO, stdout=output, stderr=subprocess.STDOUT, check=False)
  return result.returncode, int(peak.read_text()) / 1024  # ru_maxrss: KiB on Linux


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:os.fork")
def test_peak_memory_for_150_frames_is_within_10_percent_of_15(tmp_path):
  model = ifr.IFIRNN(cells=2, iterations=2, n1=4, n2=6, n3=8, nh=4, num_resblocks=1)
  weights = ifr.save_weights(model.init(jax.random.key(0)), tmp_path / "tiny.safetensors",
                             model=model)
  video = tmp_path / "long.mp4"
  with FrameSink(video, fps=30) as sink:
    for frame in synthetic_frames(FRAMES):
      sink.write(frame)

  peaks = {}
  for count in (15, FRAMES):
    out = tmp_path / f"out_{count}"
    status, peaks[count] = run_deblur(
        ["--input", str(video), "--output", str(out), "--weights", str(weights),
         "--max-frames", str(count)], tmp_path / f"log_{count}.txt")
    assert status == 0, (tmp_path / f"log_{count}.txt").read_text()
    written = sorted(out.glob("*.png"))
    assert len(written) == count
    assert iio.imread(written[-1]).shape == (HEIGHT, WIDTH, 3)
  print(f"peak RSS: 15 frames {peaks[15]:.3f} MiB, {FRAMES} frames {peaks[FRAMES]:.3f} MiB")
  assert peaks[FRAMES] <= 1.10 * peaks[15], peaks


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
  real_write = FrameSink.write

  def write(self, frame):
    inputs = sources[0].yielded
    assert len(inputs) == self.num_written + 1  # one frame decoded per frame written
    alive.append((sum(r() is not None for r in inputs[:-1]),
                  sum(r() is not None for r in written)))
    written.append(weakref.ref(frame))
    real_write(self, frame)
  monkeypatch.setattr(FrameSink, "write", write)

  status = deblur.main(["--input", str(video), "--output", str(tmp_path / "out"),
                        "--weights", str(weights)] + (["--compare"] if compare else []))
  assert status == 0
  assert len(alive) == count
  assert alive == [(0, 0)] * count, alive
