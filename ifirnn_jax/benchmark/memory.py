"""--mode memory: peak RSS of the deblur command over video length."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from data_pipeline.safe_io import files
from ifirnn_jax.benchmark.settings import BenchmarkError, model_at_widths, parse_widths


# --mode memory: peak RSS of `python -m ifirnn_jax.deblur` on synthetic videos of these
# lengths, each in a fresh process: streaming must keep it independent of the length.
MEMORY_LENGTHS = (15, 150, 1500)
MEMORY_DEFAULTS = dict(models="C1H1", widths=(4, 6, 8, 4, 1), height=720, width=1280)

# Runs argv[2:], then writes its peak RSS (KiB) to argv[1]. A small wrapper reads the
# peak from its RUSAGE_CHILDREN: the child's own ru_maxrss would also count the
# memory of the process it was spawned from (shared until exec), here a JAX process.
_PEAK_RSS_WRAPPER = """
import resource, subprocess, sys
status = subprocess.call(sys.argv[2:])
with open(sys.argv[1], "w") as f:
  f.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(status)
"""


def synthetic_frames(count: int, height: int, width: int) -> Any:
  """uint8 [H, W, 3] frames of moving gradients, one at a time."""
  y, x = np.mgrid[0:height, 0:width]
  for t in range(count):
    yield np.stack([(3 * x + 5 * t) % 256, (2 * y + 3 * t) % 256, (x + y + 7 * t) % 256],
                   axis=-1).astype(np.uint8)


def deblur_peak_rss(args: list[str], log: Path) -> tuple[int, float, float]:
  """Runs the deblur CLI in a fresh process: (exit status, peak RSS in MiB, seconds)."""
  peak = log.with_suffix(".peak")
  start = time.perf_counter()
  with open(log, "wb") as output:
    status = subprocess.call(
        [sys.executable, "-c", _PEAK_RSS_WRAPPER, str(peak),
         sys.executable, "-m", "ifirnn_jax.deblur", *args],
        cwd=Path(__file__).resolve().parents[2], stdout=output, stderr=subprocess.STDOUT)
  seconds = time.perf_counter() - start
  rss = int(peak.read_text()) / 1024 if peak.exists() else float("nan")  # KiB on Linux
  return status, rss, seconds


def run_memory(args: argparse.Namespace) -> dict[str, Any]:
  """Peak RSS of deblurring MEMORY_LENGTHS-frame videos (video in, H.264 video out)."""
  from data_pipeline.video import FrameSink  # pylint: disable=g-import-not-at-top
  from ifirnn_jax.storage import weights
  try:
    lengths = tuple(int(x) for x in args.lengths.split(","))
  except ValueError:
    lengths = ()
  if not lengths or min(lengths) < 1:
    raise BenchmarkError(f"--lengths must be integers >= 1, comma-separated, got "
                         f"{args.lengths!r}")
  height = MEMORY_DEFAULTS["height"] if args.height is None else args.height
  width = MEMORY_DEFAULTS["width"] if args.width is None else args.width
  if height < 4 or width < 4:
    raise BenchmarkError(f"--height and --width must be >= 4, got {height}x{width}")
  name = args.models or MEMORY_DEFAULTS["models"]
  widths = parse_widths(args.widths or MEMORY_DEFAULTS["widths"])
  model = model_at_widths(name, widths)
  report: dict[str, Any] = {
      "mode": "memory", "model": model.name, "widths": list(widths), "height": height,
      "width": width, "cpu_count": os.cpu_count(), "jax": jax.__version__, "results": []}
  with tempfile.TemporaryDirectory(prefix="ifirnn_memory_") as folder:
    folder = Path(folder)
    weight_file = weights.save_weights(model.init(jax.random.key(args.seed)),
                                       folder / "model.safetensors", model=model)
    for count in lengths:
      video = folder / f"in_{count}.mp4"
      with FrameSink(video, fps=30) as sink:
        for frame in synthetic_frames(count, height, width):
          sink.write(frame)
      log = folder / f"log_{count}.txt"
      status, rss, seconds = deblur_peak_rss(
          ["--input", str(video), "--output", str(folder / f"out_{count}.mp4"),
           "--weights", str(weight_file)], log)
      if status != 0:
        raise BenchmarkError(f"deblur of the {count}-frame video failed (exit {status}): "
                             f"{log.read_text()[-2000:]}")
      report["results"].append(dict(frames=count, peak_rss_mib=round(rss, 1),
                                    seconds=round(seconds, 1)))
      video.unlink()
      (folder / f"out_{count}.mp4").unlink()
      files.write_json_atomic(Path(args.out), report)
  return report
