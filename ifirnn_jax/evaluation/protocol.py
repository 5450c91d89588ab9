"""The paper's evaluation protocol as a library: per-frame results, then their averages.

Every test sequence runs through the recurrence frame by frame (`IFIRNN.step`, constant
memory); frames [skip_first, T - skip_last) of each sequence are scored with
`metrics.py` (8-bit quantised RGB PSNR, Gaussian SSIM) and averaged over all scored
frames and per sequence. `frame_results` yields one `FrameResult` per frame and
setting; `summarize` turns them into one `EvalSummary` per setting. Nothing here
prints or writes files: `evaluate.py` (the command) and `train.py` report the results.

Inference settings (`Setting`): a fixed N (a gated "-reg" model's gate removed, as in
the paper), or adaptive: a gated model keeps its gate, deterministically (continue
while p(continue) > 0.5, at most N iterations), run as a loop that stops early.

Time per frame is the wall time of the streaming step, output copied to the host, on
every frame but a sequence's first (which includes compilation).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import jax
import numpy as np

from data_pipeline import eval_pipeline, layouts
from ifirnn_jax.evaluation import metrics
from ifirnn_jax.model.network import IFIRNN, Params


class EvalError(ValueError):
  """Evaluation that cannot run: bad options, unwritable output, nothing to score."""


@dataclasses.dataclass(frozen=True)
class Setting:
  """One inference setting: N iterations, fixed or adaptive (gate kept, greedy)."""

  iterations: int
  adaptive: bool = False

  def __post_init__(self):  # np.int64 and the like -> int, so the results stay JSON
    if isinstance(self.iterations, np.integer):
      object.__setattr__(self, "iterations", int(self.iterations))

  @property
  def label(self) -> str:
    """'N=3', or 'adaptive N<=3'."""
    return f"adaptive N<={self.iterations}" if self.adaptive else f"N={self.iterations}"

  @property
  def slug(self) -> str:
    """A file-name-safe label: 'N3', 'adaptive'."""
    return "adaptive" if self.adaptive else f"N{self.iterations}"


@dataclasses.dataclass(frozen=True)
class FrameResult:
  """One frame of one sequence through one setting.

  output, blur: float32 [H, W, 3] (output not clipped); sharp: the same, or None.
  seconds: wall time of the step (None for a sequence's first frame: compilation).
  Scores (PSNR in dB, SSIM) are None for a frame outside [skip_first, T - skip_last).
  """

  sequence: str
  frame: str
  index: int              # t within the sequence
  setting: int            # position in the settings evaluated
  output: np.ndarray
  blur: np.ndarray
  sharp: np.ndarray | None
  iterations: float       # iterations run (N for a fixed setting)
  seconds: float | None
  middle: bool            # the middle scored frame of its sequence (the example)
  psnr: float | None = None
  ssim: float | None = None
  blurry_psnr: float | None = None
  blurry_ssim: float | None = None

  @property
  def scored(self) -> bool:
    return self.psnr is not None


@dataclasses.dataclass
class EvalSummary:
  """Frame-averaged results over all scored frames, plus per-sequence rows.

  iterations: N (the maximum N for an adaptive setting); mean_iterations: iterations
  run per scored frame, averaged (N for a fixed setting). frame_rows: one dict per
  scored frame (sequence, frame, psnr, ssim, blurry_psnr, blurry_ssim, iterations),
  in evaluation order; unscored: sequences with no scored frame, as (name, frames).
  Neither is part of `as_dict`.
  """

  psnr: float
  ssim: float
  blurry_psnr: float
  blurry_ssim: float
  frames: int
  frames_per_second: float
  iterations: int
  sequences: list[dict[str, Any]]
  example: dict[str, np.ndarray] | None = None  # uint8 [H, W, 3] blurry / output / sharp
  mean_iterations: float | None = None
  adaptive: bool = False
  frame_rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
  unscored: list[tuple[str, int]] = dataclasses.field(default_factory=list)

  def __post_init__(self):
    if self.mean_iterations is None:
      self.mean_iterations = float(self.iterations)

  @property
  def ms_per_frame(self) -> float:
    return 1000.0 / self.frames_per_second if self.frames_per_second > 0 else float("nan")

  @property
  def setting(self) -> Setting:
    return Setting(self.iterations, self.adaptive)

  def as_dict(self) -> dict[str, Any]:
    d = dataclasses.asdict(self)
    for internal in ("example", "frame_rows", "unscored"):
      d.pop(internal)
    d["ms_per_frame"] = self.ms_per_frame
    return d


# ------------------------------------------------------------------ the protocol loop
def check_settings(model: IFIRNN, settings: Sequence[Setting], skip_first: int,
                   skip_last: int) -> None:
  """Raises EvalError for settings `model` cannot run and negative skips."""
  if not settings:
    raise EvalError("no inference setting to evaluate")
  for setting in settings:
    if setting.iterations < 1:
      raise EvalError(f"iterations must be >= 1, got {setting.iterations}")
    if setting.adaptive and not model.gated:
      raise EvalError(f"adaptive inference needs a gated ('-reg') model; "
                      f"{model.name} has no gate")
  if skip_first < 0 or skip_last < 0:
    raise EvalError(f"skip_first and skip_last must be >= 0, got {skip_first}, {skip_last}")


def frame_results(model: IFIRNN, params: Params, sequences: Sequence[layouts.Sequence],
                  settings: Sequence[Setting], *, skip_first: int = 4, skip_last: int = 1,
                  max_frames: int = -1) -> Iterator[FrameResult]:
  """Each frame of each sequence (its first `max_frames`, -1: all), read once and
  stepped through every setting, each with its own hidden state.

  Raises EvalError for bad settings and for a non-finite output (naming the frame).
  """
  check_settings(model, settings, skip_first, skip_last)
  for sequence in sequences:
    length = sequence.num_frames if max_frames <= 0 else min(sequence.num_frames, max_frames)
    scored = range(skip_first, max(skip_first, length - skip_last))
    states: list[Any] = [None] * len(settings)
    for t, (name, blur, sharp) in enumerate(eval_pipeline.iter_eval_frames(sequence)):
      if t >= length:
        break
      score = t in scored and sharp is not None
      blurry = metrics.psnr_ssim_host(blur, sharp) if score else (None, None)
      # The frames are 8-bit (k / 255): as uint8 the model needs no check of their range.
      blur_uint8 = metrics.to_uint8_host(blur)
      for k, setting in enumerate(settings):
        if states[k] is None:
          states[k] = model.initial_state(*blur.shape[:2])
        tick = time.perf_counter()
        output, states[k], iterations = model.step(
            params, blur_uint8, states[k], iterations=setting.iterations,
            adaptive=setting.adaptive, with_iterations=True)
        # One transfer per frame: the output (and an adaptive setting's iterations run).
        if setting.adaptive:
          output, iterations = jax.device_get((output, iterations))
        else:
          output, iterations = np.asarray(output), setting.iterations
        seconds = time.perf_counter() - tick
        if not np.isfinite(output).all():
          raise EvalError(f"{sequence.name}/{name}: the model's output is not finite (its "
                          f"hidden state diverged after {t + 1} frames; a model trained on "
                          f"short clips can be unstable on long sequences)")
        psnr, ssim = metrics.psnr_ssim_host(output, sharp) if score else (None, None)
        yield FrameResult(
            sequence=sequence.name, frame=name, index=t, setting=k, output=output,
            blur=blur, sharp=sharp, iterations=float(iterations),
            seconds=seconds if t > 0 else None,
            middle=score and t == scored.start + len(scored) // 2,
            psnr=None if psnr is None else float(psnr),
            ssim=None if ssim is None else float(ssim),
            blurry_psnr=None if blurry[0] is None else float(blurry[0]),
            blurry_ssim=None if blurry[1] is None else float(blurry[1]))


# ------------------------------------------------------------------ aggregation
class _Tally:
  """Running scores and timing of one setting."""

  def __init__(self, setting: Setting):
    self.setting = setting
    self.rows: list[dict[str, Any]] = []        # per sequence
    self.frame_rows: list[dict[str, Any]] = []  # per scored frame
    self.timed_frames, self.timed_seconds = 0, 0.0
    self.example: dict[str, np.ndarray] | None = None
    self.sequence_start = 0

  def add(self, result: FrameResult, keep_example: bool) -> None:
    if result.seconds is not None:
      self.timed_frames += 1
      self.timed_seconds += result.seconds
    if not result.scored:
      return
    self.frame_rows.append(dict(
        sequence=result.sequence, frame=result.frame, psnr=result.psnr, ssim=result.ssim,
        blurry_psnr=result.blurry_psnr, blurry_ssim=result.blurry_ssim,
        iterations=result.iterations))
    if keep_example and self.example is None and result.middle:
      self.example = {key: metrics.to_uint8_host(v) for key, v in
                      (("blurry", result.blur), ("output", result.output),
                       ("sharp", result.sharp))}

  def end_sequence(self, name: str) -> bool:
    """Closes the per-sequence row of `name`; False if none of its frames was scored."""
    f = self.frame_rows[self.sequence_start:]
    self.sequence_start = len(self.frame_rows)
    if not f:
      return False
    self.rows.append(dict(
        sequence=name, frames=len(f), psnr=_mean(r["psnr"] for r in f),
        ssim=_mean(r["ssim"] for r in f), blurry_psnr=_mean(r["blurry_psnr"] for r in f),
        blurry_ssim=_mean(r["blurry_ssim"] for r in f),
        mean_iterations=_mean(r["iterations"] for r in f)))
    return True

  def summary(self, unscored: list[tuple[str, int]]) -> EvalSummary:
    f = self.frame_rows
    return EvalSummary(
        psnr=_mean(r["psnr"] for r in f), ssim=_mean(r["ssim"] for r in f),
        blurry_psnr=_mean(r["blurry_psnr"] for r in f),
        blurry_ssim=_mean(r["blurry_ssim"] for r in f),
        frames=len(f), iterations=self.setting.iterations, sequences=self.rows,
        example=self.example, mean_iterations=_mean(r["iterations"] for r in f),
        adaptive=self.setting.adaptive, frame_rows=f, unscored=list(unscored),
        frames_per_second=(self.timed_frames / self.timed_seconds if self.timed_seconds
                           else float("nan")))


def _mean(values: Iterable[float]) -> float:
  return float(np.mean(np.asarray(list(values), np.float64)))


def summarize(results: Iterable[FrameResult], settings: Sequence[Setting], *,
              skip_first: int = 4, skip_last: int = 1,
              keep_example: bool = False) -> list[EvalSummary]:
  """One EvalSummary per setting (in the order of `settings`) from `frame_results`.

  keep_example: keep one middle scored frame (blurry, output, sharp) per setting.
  Raises EvalError if no frame was scored.
  """
  tallies = [_Tally(s) for s in settings]
  unscored: list[tuple[str, int]] = []
  current, length = None, 0

  def end_sequence():
    if current is not None and not any([t.end_sequence(current) for t in tallies]):
      unscored.append((current, length))

  for result in results:
    if result.sequence != current:
      end_sequence()
      current, length = result.sequence, 0
    length = max(length, result.index + 1)
    tallies[result.setting].add(result, keep_example)
  end_sequence()
  if not tallies[0].frame_rows:
    raise EvalError("no frame was scored: sequences are shorter than skip_first + skip_last "
                    f"({skip_first} + {skip_last}) or have no sharp frames")
  return [t.summary(unscored) for t in tallies]


def evaluate_settings(model: IFIRNN, params: Params, sequences: Sequence[layouts.Sequence],
                      settings: Sequence[Setting], *, skip_first: int = 4,
                      skip_last: int = 1, max_sequences: int = -1, max_frames: int = -1,
                      keep_example: bool = False) -> list[EvalSummary]:
  """`summarize(frame_results(...))`: several settings in one pass over the data.

  max_sequences / max_frames: -1 for all (shorter validation during training).
  """
  sequences = list(sequences)[:max_sequences] if max_sequences > 0 else list(sequences)
  return summarize(frame_results(model, params, sequences, settings, skip_first=skip_first,
                                 skip_last=skip_last, max_frames=max_frames),
                   settings, skip_first=skip_first, skip_last=skip_last,
                   keep_example=keep_example)


def evaluate_sequences(model: IFIRNN, params: Params, sequences: Sequence[layouts.Sequence],
                       *, skip_first: int = 4, skip_last: int = 1, max_sequences: int = -1,
                       max_frames: int = -1, iterations: int | None = None,
                       keep_example: bool = False, adaptive: bool = False) -> EvalSummary:
  """Deblurs every sequence frame by frame and scores frames [skip_first, T - skip_last).

  iterations: N (default: the model's). adaptive: keep a gated model's gate (greedy).
  """
  n = model.iterations if iterations is None else iterations
  return evaluate_settings(model, params, sequences, [Setting(n, adaptive)],
                           skip_first=skip_first, skip_last=skip_last,
                           max_sequences=max_sequences, max_frames=max_frames,
                           keep_example=keep_example)[0]
