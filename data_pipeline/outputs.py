"""What an output path may replace: the rules behind every `--overwrite`.

`--overwrite` only ever replaces an output these tools wrote: a file of the expected
kind (a video, a weight file), a folder holding nothing but numbered frames
(`000000.png`, ...), or a folder of synthesised sequences (nothing but `blur`,
`blur_gamma` and `sharp` folders of such frames). Anything else is refused with a
`DataError` naming what would be lost. An output that is an input, or a folder that
holds an input, is refused too. Paths are compared after resolving symlinks.
"""

from __future__ import annotations

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


def remove_stale_partials(target: str | os.PathLike, is_folder: bool) -> list[Path]:
  """Deletes the `.NAME.partial-*` and `.NAME.old-*` leftovers of `target` (of runs that
  were killed) beside it: folders for a folder `target`, files for a file; returns them.

  Also the `.STEM.partial-*SUFFIX` files of a file `target`.
  """
  target = Path(target)
  if not target.parent.is_dir():
    return []
  prefixes = (f".{target.name}.partial-", f".{target.name}.old-")
  removed = []
  for entry in target.parent.iterdir():
    name = entry.name
    if entry.is_symlink() or entry.is_dir() != is_folder:
      continue
    ours = name.startswith(prefixes) or (
        not is_folder and target.suffix and name.startswith(f".{target.stem}.partial-")
        and name.endswith(target.suffix))
    if ours:
      if is_folder:
        shutil.rmtree(entry, ignore_errors=True)
      else:
        entry.unlink(missing_ok=True)
      removed.append(entry)
  return removed
