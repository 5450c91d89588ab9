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
from typing import NoReturn

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


class UsageError(Exception):
  """A command-line value that the argument parser could not check (one `error:` line)."""


def exit_usage_error(message: str) -> NoReturn:
  """For argument parsing that runs before `run_command` (absl's flags): prints
  `error: <message>` on one line and exits with status 2, as `run_command` would."""
  print(f"error: {' '.join(message.split())}", file=sys.stderr)
  sys.exit(2)


class Stopped(Exception):
  """Work stopped by Ctrl-C or SIGTERM after cleaning up; the message says where it stands.

  Raised from the `KeyboardInterrupt` it wraps (`interrupt`), when the work itself knows
  better than its command what is left (train: the last complete checkpoint).
  """

  def __init__(self, interrupt: KeyboardInterrupt, message: str):
    super().__init__(message)
    self.interrupt = interrupt


def error_message(error: BaseException) -> str:
  """The one line after `error: `: an OSError as '<file>: <reason>', anything else as its
  message with runs of white space (newlines included) collapsed."""
  if isinstance(error, OSError) and error.strerror:
    text = f"{error.filename}: {error.strerror}" if error.filename else error.strerror
  else:
    text = str(error)
  return " ".join(text.split()) or type(error).__name__


def run_command(work: Callable[[], int | None], errors: tuple[type[BaseException], ...],
                unfinished: str) -> int:
  """A command's exit status, the one policy of every command of the project.

  Runs `work` with SIGTERM as Ctrl-C; its status when it returns one, else 0. One of
  `errors` or a `UsageError` (bad input: a message naming the file or flag and the
  problem) prints `error: <message>` (`error_message`) on one line and gives 2; Ctrl-C
  or SIGTERM prints `interrupted; <unfinished>` (or `terminated (SIGTERM); ...`), or
  `interrupted: <message>` for a `Stopped`, and gives 130 or 143.
  """
  try:
    with sigterm_as_interrupt():
      status = work()
  except (UsageError,) + tuple(errors) as e:
    print(f"error: {error_message(e)}", file=sys.stderr)
    return 2
  except Stopped as e:
    what, status = describe(e.interrupt)
    print(f"{what}: {e}", file=sys.stderr)
    return status
  except KeyboardInterrupt as e:
    what, status = describe(e)
    print(f"{what}; {unfinished}", file=sys.stderr)
    return status
  return 0 if status is None else status


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
