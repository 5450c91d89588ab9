"""Deblur a video file or a folder of frames with a trained IFI-RNN.

    python -m ifirnn_jax.deblur --input shaky.mp4 --output sharp.mp4 --weights C2H3.safetensors
    python -m ifirnn_jax.deblur --input frames/ --output out/ --workdir runs/c2h3 --step 20000
    python -m ifirnn_jax.deblur --input big.mp4 --output cmp.mp4 --weights w.safetensors \\
        --compare --tile-size 512 --tile-overlap 32 --max-frames 100

Frames are streamed one at a time through `IFIRNN.step`, and no frame outlives its
turn: peak memory does not grow with the video's length (the command also gives
frame-sized blocks back to the system when freed, `ifirnn_jax.runtime.glibc_malloc`). The output
keeps the input's frame rate, frame count and size, and is written atomically (it
appears only when complete). Outputs are clipped to [0, 1] and rounded to 8 bits,
exactly as `ifirnn_jax.evaluation.metrics` scores them. Only the first video stream is
deblurred; a video output gets the input's audio unchanged (ffmpeg stream copy, cut to
the video's length) where its container takes it. Subtitles, further video streams and
the audio of a frame-folder output are not kept; the command says so when the input has
any. Frames larger than 1920x1088 pixels (or
any frame, with --tile-size) are deblurred in overlapping tiles, each tile carrying its
own hidden state from frame to frame, blended without seams (`ifirnn_jax.evaluation.tiling`).

Exit status: 0 done, 2 bad input (message `error: ...` on stderr), 130 interrupted
(Ctrl-C), 143 terminated (SIGTERM); either way no partial output is left behind.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import sys
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from data_pipeline.commandline import console, termination
from data_pipeline.safe_io import outputs
from data_pipeline.safe_io.files import Progress
from data_pipeline.errors import DataError
from data_pipeline.video import DEFAULT_FPS, FrameSink, is_video_path, open_frames
from ifirnn_jax import cli, runtime
from ifirnn_jax.evaluation import captions, metrics, tiling
from ifirnn_jax.storage import loading
from ifirnn_jax.storage.checkpoint import CheckpointError
from ifirnn_jax.model.network import IFIRNN, check_count
from ifirnn_jax.storage.weights import WeightsError

# Frames with more pixels than this are tiled unless told otherwise (1080p fits).
MAX_UNTILED_PIXELS = 1920 * 1088
DEFAULT_TILE_SIZE = 512
DEFAULT_TILE_OVERLAP = 32


# ----------------------------------------------------------------------------- compute
class NonFiniteOutput(ValueError):
  """The model's output of frame `frame` (1-based) holds NaN or infinity."""

  def __init__(self, frame: int):
    super().__init__(f"the model's output is not finite at frame {frame}")
    self.frame = frame


@jax.jit
def _to_uint8_on_device(out: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(the frame as metrics.to_uint8_host gives it, whether all of `out` is finite)."""
  return metrics.quantize(out).astype(jnp.uint8), jnp.isfinite(out).all()


def deblur_frames(model: IFIRNN, params: Any, frames: Iterable[np.ndarray], *,
                  iterations: int | None = None,
                  grid: tiling.TileGrid | None = None,
                  adaptive: bool = False,
                  as_uint8: bool = False) -> Iterator[np.ndarray]:
  """Streams frames through the recurrence, one frame ahead.

  Frame t+1's step is dispatched before output t is read back, so the device computes
  while the caller encodes output t: at most two frames (and their outputs) are alive
  at a time, whatever the video's length.

  Args:
    model, params: the network and its parameters.
    frames: uint8 [H, W, 3] frames (or float32 in [0, 1]), all one size.
    iterations: intra-frame iterations N (default: the model's).
    grid: tile the frames on this grid (each tile keeps its own hidden state);
      None deblurs whole frames.
    adaptive: keep a gated model's gate (greedy: stop iterating a frame, or a tile,
      once p(continue) <= 0.5), so easy frames take fewer iterations.
    as_uint8: yield 8-bit frames, clipped and rounded exactly as
      `metrics.to_uint8_host` (on the device for whole frames, so a quarter of the
      bytes come back and the host does no per-pixel work); an output that is not
      finite raises NonFiniteOutput.

  Yields:
    L_t, float32 [H, W, 3], not clipped (equal to `model.deblur` of the whole clip
    when not tiled), or uint8 [H, W, 3] with `as_uint8`; in the order of the frames.
  """
  state = weights = pending = None
  produced = 0

  def read_back(out: Any) -> np.ndarray:  # the one transfer per frame
    nonlocal produced
    produced += 1
    if grid is None and as_uint8:
      frame, finite = jax.device_get(out)
    else:
      frame = np.asarray(out) if grid is None else tiling.merge(np.asarray(out), grid, weights)
      if not as_uint8:
        return frame
      frame, finite = metrics.to_uint8_host(frame), np.isfinite(frame).all()
    if not finite:
      raise NonFiniteOutput(produced)
    return frame

  for frame in frames:
    # uint8 frames go to the model as they are: 4x less to send, no range to check.
    x = np.asarray(frame)
    x = x if x.dtype == np.uint8 else x.astype(np.float32)
    if grid is None:
      if state is None:
        state = model.initial_state(*x.shape[:2])
      out, state = model.step(params, x, state, iterations=iterations, adaptive=adaptive)
      if as_uint8:
        out = _to_uint8_on_device(out)
    else:
      if state is None:
        weights = tiling.blend_weights(grid)
        state = model.initial_state(grid.tile_height, grid.tile_width, batch=grid.num_tiles)
      out, state = model.step(params, tiling.split(x, grid), state, iterations=iterations,
                              adaptive=adaptive)
    if pending is not None:
      yield read_back(pending)
    pending = out
  if pending is not None:
    yield read_back(pending)


class RecentFrames:
  """Iterates `frames`, keeping the last two it yielded (by position), and no others.

  `deblur_frames` runs one frame ahead, so when output t arrives input t+1 may already
  have been drawn: input t is still here for --compare, without buffering the stream
  (itertools.tee would hold up to 57 frames, its link size, alive).
  """

  def __init__(self, frames: Iterable[np.ndarray]):
    self._frames = enumerate(frames)
    self._recent: collections.deque[tuple[int, np.ndarray]] = collections.deque(maxlen=2)

  def __iter__(self) -> RecentFrames:
    return self

  def __next__(self) -> np.ndarray:
    if len(self._recent) == self._recent.maxlen:
      self._recent.popleft()  # released before the next frame is read
    position, frame = next(self._frames)
    self._recent.append((position, frame))
    return frame

  def frame(self, position: int) -> np.ndarray:
    """Input `position` (0-based), if it is one of the last two drawn."""
    for held, frame in self._recent:
      if held == position:
        return frame
    raise LookupError(f"frame {position} is no longer held (held: "
                      f"{[held for held, _ in self._recent]})")


def choose_grid(height: int, width: int, tile_size: int | None,
                tile_overlap: int | None) -> tiling.TileGrid | None:
  """The tile grid for height x width frames, or None to deblur them whole."""
  if tile_size is None and height * width <= MAX_UNTILED_PIXELS:
    return None
  return tiling.make_grid(height, width,
                          DEFAULT_TILE_SIZE if tile_size is None else tile_size,
                          DEFAULT_TILE_OVERLAP if tile_overlap is None else tile_overlap)


# ----------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="python -m ifirnn_jax.deblur", formatter_class=console.HelpFormatter,
      description="Deblur a video file or a folder of frames with an IFI-RNN model.")
  parser.add_argument("--input", required=True, type=Path,
                      help="video file (any format ffmpeg reads) or folder of images")
  parser.add_argument("--output", required=True, type=Path,
                      help="video file (.mp4, .mkv, ...; H.264) or folder (PNG frames)")
  source = parser.add_mutually_exclusive_group(required=True)
  source.add_argument("--weights", type=Path, help="a .safetensors weight file")
  source.add_argument("--workdir", type=Path, help="a training work directory (checkpoints)")
  parser.add_argument("--step", type=int, default=None,
                      help="checkpoint step in --workdir (default: the latest)")
  parser.add_argument("--iterations", type=int, default=None,
                      help="intra-frame iterations N (default: the model's)")
  parser.add_argument("--adaptive", action="store_true",
                      help="gated (-reg) models: keep the gate, so easy frames stop early")
  parser.add_argument("--compare", action="store_true",
                      help="write input | output side by side (twice the width), each half "
                           "labelled in its top-left corner")
  parser.add_argument("--overwrite", action="store_true",
                      help="replace an existing output this tool wrote (a video file, or a "
                           "folder holding nothing but its frames)")
  parser.add_argument("--tile-size", type=int, default=None,
                      help=f"deblur in tiles of this size (default: {DEFAULT_TILE_SIZE}, "
                           f"and only for frames over 1920x1088 pixels)")
  parser.add_argument("--tile-overlap", type=int, default=None,
                      help=f"overlap of neighbouring tiles (default: {DEFAULT_TILE_OVERLAP})")
  parser.add_argument("--max-frames", type=int, default=None,
                      help="deblur only the first K frames (default: all)")
  cli.add_conv_impl_flag(parser)
  return parser


def _check_args(args: argparse.Namespace) -> None:
  """Raises ValueError for values argparse cannot check alone."""
  if args.iterations is not None:
    check_count("--iterations", args.iterations)  # the model's own bounds on N
  if args.max_frames is not None and args.max_frames < 1:
    raise ValueError(f"--max-frames must be >= 1, got {args.max_frames}")
  if args.step is not None and args.workdir is None:
    raise ValueError("--step needs --workdir")
  if args.tile_overlap is not None and args.tile_overlap < 0:
    raise ValueError(f"--tile-overlap must be >= 0, got {args.tile_overlap}")
  if args.tile_size is not None and args.tile_size < tiling.MIN_TILE_SIZE:
    raise ValueError(f"--tile-size must be >= {tiling.MIN_TILE_SIZE}, got {args.tile_size}")
  if args.tile_size is not None:  # checks size and overlap together
    overlap = args.tile_overlap
    if overlap is None:  # the default overlap, shrunk to fit a small tile
      overlap = args.tile_overlap = min(DEFAULT_TILE_OVERLAP, args.tile_size // 2)
    try:
      tiling.make_grid(args.tile_size, args.tile_size, args.tile_size, overlap)
    except ValueError as e:
      raise ValueError(f"--tile-overlap {overlap} does not fit --tile-size "
                       f"{args.tile_size}: {e}") from None
  outputs.check_not_input(args.output, [p for p in (args.input, args.weights, args.workdir)
                                         if p is not None], flag="--output")
  outputs.refuse_existing(args.output, args.overwrite)  # a dangling symlink too
  outputs.check_parent(args.output)


def run(args: argparse.Namespace) -> None:
  """Deblurs args.input into args.output (raises DataError, WeightsError, ValueError)."""
  _check_args(args)
  source = open_frames(args.input)
  model, params, _ = loading.load_network(args.weights, args.workdir, step=args.step,
                                          conv_impl=args.conv_impl)
  if args.adaptive and not model.gated:
    raise ValueError(f"--adaptive needs a gated (-reg) model; {model.name} has no gate")
  iterations = model.iterations if args.iterations is None else args.iterations
  grid = choose_grid(source.height, source.width, args.tile_size, args.tile_overlap)
  audio = "audio" in source.other_streams and is_video_path(args.output)
  dropped = [kind for kind in source.other_streams if not (audio and kind == "audio")]
  if dropped:  # said once, before the work
    print(f"note: {args.input}: its {', '.join(dropped)} stream(s) are not copied to "
          f"{args.output} (only the first video stream is deblurred"
          f"{', and the audio copied' if audio else ''})", file=sys.stderr)
  total = source.num_frames
  if args.max_frames is not None:
    total = args.max_frames if total is None else min(total, args.max_frames)

  tiles = "" if grid is None else f", {grid.num_tiles} tiles of {grid.tile_width}x{grid.tile_height}"
  print(f"{model.name} N={iterations}{tiles}: {args.input} ({source.width}x{source.height}, "
        f"{total if total is not None else '?'} frames, fps {source.fps or '-'}) -> "
        f"{args.output}", file=sys.stderr)

  progress = Progress(total, "deblur")
  try:
    with source, FrameSink(args.output, fps=source.fps or DEFAULT_FPS, overwrite=args.overwrite,
                           audio_from=args.input if audio else None) as sink:
      frames = RecentFrames(itertools.islice(source, args.max_frames))
      outputs = deblur_frames(model, params, frames, iterations=iterations, grid=grid,
                              adaptive=args.adaptive, as_uint8=True)
      for done, frame in enumerate(outputs, start=1):
        if args.compare:
          frame = np.concatenate([captions.label_in_place(frames.frame(done - 1), "input"),
                                  captions.label_in_place(frame, f"{model.name} N={iterations}")],
                                 axis=1)
        sink.write(frame)
        progress.update(done)
  except NonFiniteOutput as e:
    raise ValueError(
        f"{args.input}: the model's output is not finite at frame {e.frame}: its hidden "
        f"state diverged (a model trained on short clips can be unstable on long "
        f"videos); nothing was written to {args.output}") from None
  finally:
    progress.finish()
  if audio and not sink.audio_copied:
    print(f"note: {args.input}: its audio could not be copied to {args.output} "
          f"({sink.audio_problem}); the video has none", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
  """The command line; returns the exit status (0, 2 bad input, 130 Ctrl-C, 143 SIGTERM)."""
  parser = build_parser()
  try:
    args = parser.parse_args(argv)
  except SystemExit as e:  # --help, or a usage error (already printed, status 2)
    return int(e.code or 0)
  runtime.setup(stream_frames=True)  # first: frame-sized buffers go back when freed
  with warnings.catch_warnings():
    # ffmpeg runs as a subprocess (fork + exec at once, no Python code in the child),
    # which JAX's blanket warning about os.fork() does not concern.
    warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called",
                            category=RuntimeWarning)
    return termination.run_command(lambda: run(args),
                                   (DataError, WeightsError, CheckpointError, ValueError, OSError),
                                   "no output written")


if __name__ == "__main__":
  sys.exit(main())
