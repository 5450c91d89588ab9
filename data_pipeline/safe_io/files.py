"""File and console utilities of every module: atomic writes, natural order, progress.

At the bottom of the house: imports nothing of this project, so `data_pipeline` and
`ifirnn_jax` both use it.

* Atomic writes: the content goes to a temporary file beside the target, which is
  renamed onto it once complete, with the mode a plain `open` would give (0o666 less
  the umask; `tempfile.mkstemp` makes 0o600). A reader never sees half a file and a
  failure leaves the old file as it was.
* `natural_sort_key`: "frame2" before "frame10".
* `Progress`: done/total, rate and ETA on stderr; one line rewriting itself on a
  terminal, a new line every few seconds in a log file.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO


def umask() -> int:
  """The process umask (reading it means setting it: it is put straight back)."""
  mask = os.umask(0o022)
  os.umask(mask)
  return mask


def file_mode() -> int:
  """The mode `open(path, "w")` gives a new file: 0o666 less the process umask."""
  return 0o666 & ~umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
  """A temporary path beside `path` to write to; renamed onto `path` when the block ends
  without an error, removed when it raises. `suffix` keeps the extension a writer
  may need (e.g. ".png")."""
  path = Path(path)
  fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
  os.close(fd)
  try:
    yield Path(temporary)
    os.chmod(temporary, file_mode())
    os.replace(temporary, path)
  except BaseException:
    Path(temporary).unlink(missing_ok=True)
    raise


def folder_mode() -> int:
  """The mode `mkdir` gives a new folder: 0o777 less the process umask."""
  return 0o777 & ~umask()


def partial_prefix(target: str | os.PathLike, kind: str = "partial") -> str:
  """`.NAME.<kind>-<pid>-`: the name of a temporary beside `target` starts with it, so
  that leftovers are known by the process that made them (`outputs.remove_stale_partials`
  removes only those whose process is gone)."""
  return f".{Path(target).name}.{kind}-{os.getpid()}-"


def make_partial_folder(target: str | os.PathLike) -> Path:
  """A new hidden folder beside `target` to build it in (mode from the umask, not mkdtemp's
  0700), named after this process; `replace_folder` moves it into place."""
  target = Path(target)
  partial = Path(tempfile.mkdtemp(dir=target.parent, prefix=partial_prefix(target)))
  partial.chmod(folder_mode())
  return partial


# renameat2(2) flags (linux/fs.h).
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
_AT_FDCWD = -100
# errno of a renameat2 the kernel or the filesystem does not offer.
_UNSUPPORTED = {errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP}


def _libc_renameat2():
  try:
    function = ctypes.CDLL(None, use_errno=True).renameat2
  except (OSError, AttributeError):  # not Linux, or a C library without it (glibc < 2.28)
    return None
  function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                       ctypes.c_uint]
  function.restype = ctypes.c_int
  return function


_renameat2_function = _libc_renameat2() if sys.platform.startswith("linux") else None


def renameat2(source: str | os.PathLike, target: str | os.PathLike, flags: int) -> bool:
  """Linux's renameat2(source, target, flags); False where the system or the filesystem
  does not offer it (nothing was renamed then), OSError for any other failure."""
  if _renameat2_function is None:
    return False
  if _renameat2_function(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target),
                         flags) == 0:
    return True
  error = ctypes.get_errno()
  if error in _UNSUPPORTED:
    return False
  raise OSError(error, os.strerror(error), os.fspath(source), None, os.fspath(target))


def rename_new(source: str | os.PathLike, target: str | os.PathLike) -> None:
  """Renames `source` to `target` only if `target` does not exist (FileExistsError if it
  does, also when it appeared a moment ago): never replaces anything.

  Atomic with renameat2(RENAME_NOREPLACE); elsewhere a file is hard-linked then unlinked
  (also atomic), a folder (or a file where hard links fail) renamed after a check: a
  target made between the check and the rename would be replaced (a folder only if
  empty).
  """
  if renameat2(source, target, RENAME_NOREPLACE):
    return
  if os.path.lexists(target):
    raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), os.fspath(target))
  if os.path.isdir(source) and not os.path.islink(source):
    os.rename(source, target)  # fails on a non-empty folder made since the check
    return
  try:
    os.link(source, target, follow_symlinks=False)  # fails if `target` exists
  except FileExistsError:
    raise
  except OSError:  # a filesystem without hard links: check, then rename
    if os.path.lexists(target):
      raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), os.fspath(target))
    os.rename(source, target)
    return
  os.unlink(source)


def replace_folder(source: str | os.PathLike, target: str | os.PathLike) -> None:
  """Renames folder `source` to `target`; an existing `target` is replaced, and at every
  moment `target` is either the old folder or the new one.

  Where Linux's renameat2(RENAME_EXCHANGE) works, the two folders swap names in one
  atomic step and the old one is deleted after. Elsewhere (another system, or a
  filesystem without it) the old folder is first renamed aside, then the new one into
  place: between those two renames `target` is missing for a moment (both folders are
  still on disk, under hidden `.NAME.old-<pid>-*` / `.NAME.partial-<pid>-*` names).
  """
  source, target = Path(source), Path(target)
  if not os.path.lexists(target):
    try:
      rename_new(source, target)
      return
    except FileExistsError:  # appeared meanwhile: replace it as below
      pass
  if renameat2(source, target, RENAME_EXCHANGE):
    _remove_tree(source)  # now the old folder
    return
  old = Path(tempfile.mkdtemp(dir=target.parent, prefix=partial_prefix(target, "old")))
  os.replace(target, old / target.name)
  os.replace(source, target)
  _remove_tree(old)


def _remove_tree(path: Path) -> None:
  if path.is_symlink() or not path.is_dir():
    path.unlink(missing_ok=True)
  else:
    shutil.rmtree(path, ignore_errors=True)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
  """Writes `data` to `path` atomically (creating its folder); returns the path."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  with atomic_path(path) as temporary:
    temporary.write_bytes(data)
  return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
  """Writes `text` (UTF-8) to `path` atomically (creating its folder)."""
  return write_bytes_atomic(path, text.encode())


def write_json_atomic(path: str | os.PathLike, data: Any, indent: int = 2) -> Path:
  """Writes `data` as JSON (values JSON cannot hold as their str) to `path` atomically."""
  return write_text_atomic(path, json.dumps(data, indent=indent, default=str) + "\n")


def natural_sort_key(name: str) -> tuple:
  """Sort key ordering the digit runs of `name` by value: f2.png before f10.png."""
  return tuple((0, int(part), "") if part.isdigit() else (1, 0, part)
               for part in re.split(r"(\d+)", name) if part)


def hms(seconds: float) -> str:
  """Seconds as H:MM:SS."""
  seconds = int(round(seconds))
  return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def seconds_left(elapsed_s: float, done: float, total: float) -> float:
  """Time to finish `total` units of work at the mean rate of the `done` so far (> 0)."""
  return elapsed_s / done * (total - done)


def status(message: str) -> None:
  """One line of status on stderr (a long command's steps, between progress bars)."""
  print(message, file=sys.stderr, flush=True)


class Progress:
  """`label: done/total unit (pct)  rate unit/s  ETA h:mm:ss  elapsed h:mm:ss` on stderr.

  On a terminal one line rewrites itself (every `min_interval_s`); elsewhere (a log
  file) a new line is written every `log_interval_s`. `total` None: count and rate only.
  """

  def __init__(self, total: int | None, label: str, unit: str = "frames",
               stream: TextIO | None = None, min_interval_s: float = 0.5,
               log_interval_s: float = 10.0):
    self.total, self.label, self.unit = total, label, unit
    self.stream = sys.stderr if stream is None else stream
    self.interactive = getattr(self.stream, "isatty", lambda: False)()
    self.interval_s = min_interval_s if self.interactive else log_interval_s
    self.done = 0
    self.start = time.monotonic()
    self._last = -float("inf")
    self._printed: int | None = None  # `done` when the line was last printed

  def update(self, done: int) -> None:
    self.done = done
    now = time.monotonic()
    if now - self._last >= self.interval_s or done == self.total:
      self._last = now
      self._print(now)

  def _print(self, now: float) -> None:
    self._printed = self.done
    elapsed = now - self.start
    rate = self.done / elapsed if elapsed > 0 else 0.0
    line = f"{self.label}: {self.done}"
    if self.total:
      line += f"/{self.total} {self.unit} ({100 * self.done / self.total:3.0f}%)"
      if rate > 0:
        line += (f"  {rate:.2f} {self.unit}/s  "
                 f"ETA {hms(seconds_left(elapsed, self.done, self.total))}")
    else:
      line += f" {self.unit}  {rate:.2f} {self.unit}/s"
    line += f"  elapsed {hms(elapsed)}"
    self.stream.write("\r" + line + "   " if self.interactive else line + "\n")
    self.stream.flush()

  def finish(self) -> None:
    """Prints the final state and ends the line (if anything was printed)."""
    if self._printed is None:
      return
    if self._printed != self.done:
      self._print(time.monotonic())
    if self.interactive:
      self.stream.write("\n")
      self.stream.flush()
