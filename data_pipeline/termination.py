"""SIGTERM handled like Ctrl-C, so that a killed run cleans up after itself.

`timeout`, systemd and SLURM stop a process with SIGTERM. Inside
`sigterm_as_interrupt()` it raises `Terminated` (a KeyboardInterrupt) in the main
thread, so the same `finally` blocks and `with` exits that handle Ctrl-C delete partial
outputs; a second SIGTERM during that clean-up is ignored.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable, Iterator

# Exit statuses of a run stopped by SIGINT (Ctrl-C) or SIGTERM: 128 + the signal.
EXIT_INTERRUPTED = 128 + signal.SIGINT
EXIT_TERMINATED = 128 + signal.SIGTERM


class Terminated(KeyboardInterrupt):
  """The process received SIGTERM."""


def _raise_terminated(signum, frame) -> None:
  del signum, frame
  signal.signal(signal.SIGTERM, signal.SIG_IGN)  # let the clean-up finish
  raise Terminated()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
  """Within the block, SIGTERM raises `Terminated` (main thread only; elsewhere a no-op)."""
  try:
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
  except ValueError:  # not the main thread: signals cannot be handled here
    yield
    return
  try:
    yield
  finally:
    signal.signal(signal.SIGTERM, previous)


def describe(interrupt: KeyboardInterrupt) -> tuple[str, int]:
  """('interrupted' or 'terminated (SIGTERM)', exit status) for a caught interrupt."""
  if isinstance(interrupt, Terminated):
    return "terminated (SIGTERM)", EXIT_TERMINATED
  return "interrupted", EXIT_INTERRUPTED


def run_command(work: Callable[[], None], errors: tuple[type[BaseException], ...],
                unfinished: str) -> int:
  """A command's exit status: runs `work` with SIGTERM as Ctrl-C; 0 when it finishes.

  One of `errors` (bad input: a message naming the file and the problem) prints
  `error: <message>` on one line and gives 2; Ctrl-C or SIGTERM prints
  `interrupted; <unfinished>` (or `terminated (SIGTERM); ...`) and gives 130 or 143.
  """
  try:
    with sigterm_as_interrupt():
      work()
  except errors as e:
    print(f"error: {' '.join(str(e).split()) or type(e).__name__}", file=sys.stderr)
    return 2
  except KeyboardInterrupt as e:
    what, status = describe(e)
    print(f"{what}; {unfinished}", file=sys.stderr)
    return status
  return 0


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
  """Holds Ctrl-C and SIGTERM back until the block is done, then raises them.

  For work that must not stop halfway (starting a checkpoint save). Main thread only;
  elsewhere a no-op.
  """
  received: list[int] = []

  def hold(signum, frame):
    del frame
    received.append(signum)

  try:
    previous = {s: signal.signal(s, hold) for s in (signal.SIGINT, signal.SIGTERM)}
  except ValueError:  # not the main thread
    yield
    return
  try:
    yield
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)
  if received:
    if received[0] == signal.SIGTERM:
      signal.signal(signal.SIGTERM, signal.SIG_IGN)  # as `sigterm_as_interrupt` does
      raise Terminated()
    raise KeyboardInterrupt()
