"""What an output path may replace: the rules behind every `--overwrite`.

`--overwrite` only ever replaces an output these tools wrote: a file of the expected
kind (a video, a weight file), a folder holding nothing but numbered frames
(`000000.png`, ...), or a folder of synthesised sequences (nothing but `blur`,
`blur_gamma` and `sharp` folders of such frames). Anything else is refused with a
`DataError` naming what would be lost. An output that is an input, or a folder that
holds an input, is refused too. Paths are compared after resolving symlinks.

Every command refuses an existing output without `--overwrite` in the same words
(`refuse_existing`); a dangling symlink counts as existing. Temporaries beside an output
carry the PID of the process writing them (`files.partial_prefix`); leftovers are
deleted only once that process is gone, so a second run never deletes the file another
run is still writing. (PIDs are those of this machine: on a filesystem shared between
machines, a leftover of another machine's live run is taken as gone only if no process
here has its PID.)
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from data_pipeline.errors import DataError

# Names of the frames the tools write into a folder.
FRAME_NAME = re.compile(r"^\d{6}\.png$")
# How many unexpected entries an error message lists.
_LISTED = 3


def exists(path: str | os.PathLike) -> bool:
  """True if anything is at `path`, a dangling symlink included."""
  return os.path.lexists(path)


def refuse_existing(path: str | os.PathLike, overwrite: bool,
                    flag: str = "--overwrite") -> None:
  """The one refusal of every command: `path` exists and `overwrite` was not given."""
  if exists(path) and not overwrite:
    raise DataError(f"{path}: already exists; pass {flag} to replace it")


def check_parent(path: str | os.PathLike) -> None:
  """Refuses an output whose would-be parent folder is a file (or another non-folder)."""
  path = Path(path)
  for parent in path.parents:
    if os.path.lexists(parent):
      if not parent.is_dir():
        raise DataError(f"{path}: cannot be created: {parent} is a file, not a folder")
      return


def write_error(path: str | os.PathLike, error: OSError, what: str = "write") -> DataError:
  """A DataError naming `path` for an OSError while writing it; a full disk says so."""
  if error.errno in (errno.ENOSPC, errno.EDQUOT):
    return DataError(f"{path}: cannot {what} it: the disk is full ({error.strerror}); "
                     f"free some space and run again")
  if error.errno == errno.ENAMETOOLONG:
    return DataError(f"{path}: cannot {what} it: the file name is too long for this "
                     f"filesystem")
  return DataError(f"{path}: cannot {what} it ({error.strerror or error})")


def _real(path: str | os.PathLike) -> Path:
  return Path(os.path.realpath(path))


def check_not_input(output: str | os.PathLike, inputs: Iterable[str | os.PathLike],
                    flag: str = "output") -> None:
  """Refuses an `output` that is one of `inputs` or a folder holding one of them."""
  out = _real(output)
  for source in inputs:
    src = _real(source)
    if src == out:
      raise DataError(f"{output}: the {flag} is the input {source}")
    if out in src.parents:
      raise DataError(f"{output}: the {flag} holds the input {source}; writing it "
                      f"could replace the input")


def _listing(entries: list[Path], root: Path) -> str:
  names = [str(p.relative_to(root)) + ("/" if p.is_dir() else "") for p in entries]
  more = f" and {len(names) - _LISTED} more" if len(names) > _LISTED else ""
  return ", ".join(names[:_LISTED]) + more


def _foreign_in_frame_folder(folder: Path) -> list[Path]:
  """Entries of `folder` that are not frames a tool wrote (hidden temporaries aside)."""
  return sorted(p for p in folder.iterdir()
                if not (p.is_file() and not p.is_symlink() and FRAME_NAME.match(p.name)))


def check_replaceable_frames(folder: str | os.PathLike) -> None:
  """Refuses to replace a folder holding anything but numbered frames (000000.png...)."""
  folder = Path(folder)
  foreign = _foreign_in_frame_folder(folder)
  if foreign:
    raise DataError(f"{folder}: will not replace this folder: it holds more than frames "
                    f"this tool writes ({_listing(foreign, folder)} would be lost)")


def check_replaceable_sequence(folder: str | os.PathLike,
                               subfolders: tuple[str, ...]) -> None:
  """Refuses to replace a folder holding anything but `subfolders` of numbered frames."""
  folder = Path(folder)
  foreign = []
  for entry in sorted(folder.iterdir()):
    if entry.name in subfolders and entry.is_dir() and not entry.is_symlink():
      foreign += _foreign_in_frame_folder(entry)
    else:
      foreign.append(entry)
  if foreign:
    raise DataError(f"{folder}: will not replace this folder: it holds more than the "
                    f"{'/'.join(subfolders)} frame folders this tool writes "
                    f"({_listing(foreign, folder)} would be lost)")


def check_replaceable_file(path: str | os.PathLike, kind: str,
                           suffixes: tuple[str, ...]) -> None:
  """Refuses to replace anything but a regular file with one of `suffixes`."""
  path = Path(path)
  if path.is_symlink() or not path.is_file():
    raise DataError(f"{path}: will not replace it: not a regular {kind} file")
  if path.suffix.lower() not in suffixes:
    raise DataError(f"{path}: will not replace it: not a {kind} file "
                    f"({', '.join(suffixes)})")


def _process_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # alive, another user's
    return True
  return True


def _writer_pid(name: str, prefixes: tuple[str, ...]) -> int | None:
  """The PID in `<prefix><pid>-<random>`, None without one."""
  for prefix in prefixes:
    if name.startswith(prefix):
      pid = name[len(prefix):].split("-", 1)[0]
      return int(pid) if pid.isdigit() else None
  return None


def remove_stale_partials(target: str | os.PathLike, is_folder: bool) -> list[Path]:
  """Deletes the `.NAME.partial-<pid>-*` and `.NAME.old-<pid>-*` leftovers of `target`
  beside it whose process is gone (runs that were killed): folders for a folder `target`,
  files for a file; returns them. A live process's temporaries, this one's included,
  and names without a PID are left alone.
  """
  target = Path(target)
  if not target.parent.is_dir():
    return []
  prefixes = (f".{target.name}.partial-", f".{target.name}.old-")
  removed = []
  for entry in target.parent.iterdir():
    if entry.is_symlink() or entry.is_dir() != is_folder:
      continue
    pid = _writer_pid(entry.name, prefixes)
    if pid is None or pid == os.getpid() or _process_alive(pid):
      continue
    if is_folder:
      shutil.rmtree(entry, ignore_errors=True)
    else:
      entry.unlink(missing_ok=True)
    removed.append(entry)
  return removed
