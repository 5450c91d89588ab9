"""Metric writers: clu's (TensorFlow summaries) or, without TensorFlow, tensorboardX's.

Both write TensorBoard event files into the workdir and log the scalars through absl.
Either writes in a background thread; `create_writer` wraps it so that a failure there
(a full disk) is one `WriteError` naming the step, with no thread's traceback printed.
"""

from __future__ import annotations

import logging as py_logging
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
from absl import logging


class WriteError(Exception):
  """Metrics that could not be written (a full disk, ...)."""


class TensorboardXWriter:
  """The MetricWriter methods train.py uses, on tensorboardX (no TensorFlow)."""

  def __init__(self, logdir: str | None):
    self._writer = None
    self.thread_errors: list[BaseException] = []
    if logdir is not None:
      from tensorboardX import SummaryWriter
      self._writer = SummaryWriter(logdir=str(logdir))
      _keep_thread_errors(self)

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    logging.info("[%d] %s", step, ", ".join(f"{k}={float(v):.6g}"
                                            for k, v in scalars.items()))
    if self._writer is not None:
      for name, value in scalars.items():
        self._writer.add_scalar(name, float(value), step)

  def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    """images: name -> [N, H, W, C], uint8 (0..255) or float in [0, 1] (clipped to it),
    as clu's writer takes them; the first image is written."""
    if self._writer is not None:
      for name, value in images.items():
        image = np.asarray(value)[0]
        if image.dtype != np.uint8:  # tensorboardX scales floats by 255, uint8 not
          image = np.clip(image.astype(np.float32), 0, 1)
        self._writer.add_image(name, image, step, dataformats="HWC")

  def write_hparams(self, hparams: Mapping[str, Any]) -> None:
    logging.info("Hyperparameters: %s", dict(hparams))
    if self._writer is not None:
      self._writer.add_text("hparams", repr(dict(hparams)), 0)

  def flush(self) -> None:
    if self._writer is not None:
      self._writer.flush()

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()

  def abandon(self) -> None:
    """After a failure: writes nothing more, also not at exit (where tensorboardX
    flushes again, printing the same error with a traceback)."""
    if self._writer is not None:
      for file_writer in (self._writer.all_writers or {}).values():
        file_writer.event_writer.flush = file_writer.event_writer.close = lambda: None
      self._writer = None


def _keep_thread_errors(writer: TensorboardXWriter) -> None:
  """tensorboardX writes in a thread that dies on an error (printing a traceback): the
  error is kept in `writer.thread_errors` instead, for the next call to raise."""
  from tensorboardX.event_file_writer import _EventLoggerThread
  previous = threading.excepthook

  def hook(args):
    if isinstance(args.thread, _EventLoggerThread):
      writer.thread_errors.append(args.exc_value)
    else:
      previous(args)
  threading.excepthook = hook


class _NoAsyncTraceback(py_logging.Filter):
  """Drops clu's log record (with traceback) of an error in its writer thread: the
  error is raised again at the next write, where `Guarded` reports it."""

  def filter(self, record: py_logging.LogRecord) -> bool:
    return not record.pathname.endswith("asynclib.py")


class Guarded:
  """A writer whose failures, in a call or in its thread, raise one `WriteError`."""

  def __init__(self, writer: Any, logdir: str):
    self._writer, self._logdir = writer, logdir

  def _call(self, method: str, step: int | None, *args: Any) -> None:
    try:
      getattr(self._writer, method)(*args)
      errors = getattr(self._writer, "thread_errors", [])
      if errors:
        raise errors.pop(0)
    except Exception as e:
      getattr(self._writer, "abandon", lambda: None)()
      cause = next((c for c in _causes(e) if isinstance(c, OSError)), e)
      reason = (cause.strerror if isinstance(cause, OSError) and cause.strerror
                else str(cause).splitlines()[0] if str(cause) else type(cause).__name__)
      what = "the metrics" if step is None else f"the metrics of step {step}"
      raise WriteError(f"{self._logdir}: cannot write {what} ({reason})") from None

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    self._call("write_scalars", step, step, scalars)

  def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    self._call("write_images", step, step, images)

  def write_hparams(self, hparams: Mapping[str, Any]) -> None:
    self._call("write_hparams", None, hparams)

  def flush(self) -> None:
    self._call("flush", None)

  def close(self) -> None:
    self._call("close", None)

  def close_quietly(self) -> None:
    """Closes the writer; after a failure (one already reported), drops what is left."""
    try:
      self.close()
    except WriteError:
      pass


def _causes(error: BaseException):
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    yield error
    error = error.__cause__ or error.__context__


def create_writer(workdir: str, *, just_logging: bool, use_tensorflow: bool) -> Guarded:
  """clu's default writer when `use_tensorflow`, else a TensorboardXWriter; guarded."""
  if use_tensorflow:
    from clu import metric_writers
    py_logging.getLogger("absl").addFilter(_NoAsyncTraceback())
    return Guarded(metric_writers.create_default_writer(workdir, just_logging=just_logging),
                   workdir)
  return Guarded(TensorboardXWriter(None if just_logging else workdir), workdir)
