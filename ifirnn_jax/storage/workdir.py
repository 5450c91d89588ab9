"""A training run's ownership of its workdir: the lock, the marker, the run's config.

* `claim(workdir)`: the run's lock. `workdir.lock` is created in the workdir before
  anything else is written, so its presence marks the folder as a workdir (a run killed
  at any moment of its start is recognised and resumes), and the run holds an exclusive
  `flock` on it for its whole life. The kernel drops a `flock` when the process dies
  (kill -9 included), so there is never a stale lock; unlike a POSIX `F_SETLK` lock, it
  is not dropped when some other descriptor of the file is closed. The file records the
  holder's PID and host, named when a second run is refused. A filesystem that refuses
  locks (some network filesystems) gets one warning, and training goes on unlocked.
* `config_changes` / `record_config`: the first `config.json` of a workdir is the
  run's identity. A resume that changes what is trained (the model's architecture and
  outputs, the data, batch, clips, crop, seed, optimizer, schedule, losses,
  augmentation) is refused unless allowed; the fields in `MUTABLE_FIELDS` (length of the
  run, intervals, evaluation, devices, loader, data root path, the model's runtime
  fields) may change. Every change is appended to `config_history.jsonl`; `config.json`
  stays the first run's. Beside the config, a run records what no config field says but
  what changes the batches (`RECORDED_FIELDS`: the clip sampler's version); a workdir
  whose record lacks one was trained before it existed, which counts as a change.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import os
import socket
from pathlib import Path
from typing import Any

from absl import logging

from data_pipeline.safe_io import files

LOCK_FILE = "workdir.lock"
CONFIG_FILE = "config.json"
HISTORY_FILE = "config_history.jsonl"
# Errors of a filesystem that does not do `flock` (NFS without a lock daemon, FUSE, ...).
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS)

# Config fields (dotted) that do not change what is trained: a resume may change them.
MUTABLE_FIELDS = (
    "num_train_steps", "num_epochs", "log_every_steps", "eval_every_steps",
    "checkpoint_every_steps", "keep_checkpoints", "eval", "final_eval", "cpu_devices",
    "data.loader", "data.cache_frames", "data.root", "data.make_default_if_missing",
    "model.scan_unroll", "model.remat", "model.conv_impl")

# Fields a run records beside its config (train.recorded_config). A workdir without one
# was trained by a version before it (value None: the clip sampler's stream before
# version 2), which is a change, not a field only one side has.
RECORDED_FIELDS = ("clip_sampler_version",)


class WorkdirError(Exception):
  """A workdir this run cannot own: busy, not a workdir, or trained with another config."""


class Lock:
  """The held lock of a workdir (None `fd`: the filesystem refused locks)."""

  def __init__(self, path: Path, fd: int | None):
    self.path, self.fd = path, fd

  def release(self) -> None:
    if self.fd is not None:
      os.close(self.fd)  # closing the only descriptor drops the flock
      self.fd = None


def is_workdir(path: Path) -> bool:
  """A folder a run has marked (its lock file), or one of an older version (config.json
  beside a checkpoints folder)."""
  return (path / LOCK_FILE).is_file() or (
      (path / CONFIG_FILE).is_file() and (path / "checkpoints").is_dir())


def claim(workdir: str | os.PathLike) -> Lock:
  """Makes `workdir` (if needed), marks it and locks it for this process.

  Raises WorkdirError if it is a file, a non-empty folder that is not a workdir, or
  a workdir another live process holds (naming that process).
  """
  path = Path(workdir)
  if path.exists() and not path.is_dir():
    raise WorkdirError(f"--workdir {path}: exists and is not a folder")
  if path.is_dir() and not is_workdir(path) and any(path.iterdir()):
    raise WorkdirError(f"--workdir {path}: is a folder that is not empty and not a training "
                       f"workdir (no {LOCK_FILE}); choose a new or empty folder")
  path.mkdir(parents=True, exist_ok=True)
  lock_path = path / LOCK_FILE
  fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, files.file_mode())
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    holder = _holder(fd)
    os.close(fd)
    raise WorkdirError(f"--workdir {path}: in use by {holder}; wait for it to finish, stop "
                       "it, or train in another --workdir") from None
  except OSError as e:
    os.close(fd)
    if e.errno not in _NO_LOCKS:
      raise
    logging.warning("%s: the filesystem refuses file locks (%s): training goes on without "
                    "one, so do not start a second run on this workdir", lock_path,
                    e.strerror)
    return Lock(lock_path, None)
  info = json.dumps(dict(pid=os.getpid(), host=socket.gethostname(),
                         started=_now())) + "\n"
  os.ftruncate(fd, 0)  # in place: replacing the file would leave the lock on the old one
  os.pwrite(fd, info.encode(), 0)
  return Lock(lock_path, fd)


def _holder(fd: int) -> str:
  try:
    info = json.loads(os.pread(fd, 4096, 0).decode())
    return (f"training process {int(info['pid'])} on {info['host']} "
            f"(started {info['started']})")
  except (OSError, ValueError, KeyError, TypeError):
    return "another training process"


def _now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(_flat(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = value
  return out


def _mutable(field: str) -> bool:
  return any(field == m or field.startswith(m + ".") for m in MUTABLE_FIELDS)


def _has_checkpoints(path: Path) -> bool:
  return any(p.name.isdigit() for folder in ("checkpoints", "best") if (path / folder).is_dir()
             for p in (path / folder).iterdir())


def _current_config(path: Path) -> dict[str, Any] | None:
  """The flat config of the last start: the first `config.json` with every recorded
  change applied in order (None for a new workdir)."""
  try:
    current = _flat(json.loads((path / CONFIG_FILE).read_text()))
    if (path / HISTORY_FILE).exists():
      for line in (path / HISTORY_FILE).read_text().splitlines():
        if line.strip():
          current.update({k: v[1] for k, v in json.loads(line)["changes"].items()})
  except FileNotFoundError as e:
    if Path(e.filename).name == CONFIG_FILE:
      return None
    raise WorkdirError(f"{e.filename}: cannot be read ({e.strerror})") from None
  except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
    raise WorkdirError(f"{path}: cannot read the run's config from {CONFIG_FILE} and "
                       f"{HISTORY_FILE} ({e}); restore them or train in another "
                       "--workdir") from None
  return current


def config_changes(workdir: str | os.PathLike, config: dict[str, Any],
                   allow_change: bool = False) -> dict[str, tuple[Any, Any]]:
  """{field: (last start's value, this run's)} of every field that differs from the
  workdir's config ({} for a new workdir).

  Raises WorkdirError, listing them, if one changes what is trained and not
  `allow_change`. A workdir without checkpoints has trained nothing: any change goes.
  Fields only one side has (a config of another version of this code) are not compared,
  except `RECORDED_FIELDS`: one this run has and the workdir lacks changes from None.
  """
  path = Path(workdir)
  old = _current_config(path)
  if old is None:
    return {}
  new = _flat(config)
  changes = {k: (old[k], new[k]) for k in sorted(old.keys() & new.keys())
             if json.dumps(old[k], default=str) != json.dumps(new[k], default=str)}
  changes.update({k: (None, new[k]) for k in RECORDED_FIELDS if k in new and k not in old})
  changes = dict(sorted(changes.items()))
  trained = {k: v for k, v in changes.items() if not _mutable(k)}
  if trained and not allow_change and _has_checkpoints(path):
    listed = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in trained.items())
    if "clip_sampler_version" in trained:
      listed += (" (the training clips are drawn another way by this version: the run "
                 "cannot go on with the batches it would have had)")
    raise WorkdirError(
        f"--workdir {path} was trained with another config: {listed}. Resume with the "
        f"run's values ({CONFIG_FILE}, {HISTORY_FILE}), train in a new --workdir, or pass "
        "--allow_config_change to go on with the new values (the change is recorded)")
  return changes


def record_config(workdir: str | os.PathLike, config: dict[str, Any],
                  changes: dict[str, tuple[Any, Any]], start_step: int) -> None:
  """Writes `config.json` for a new run, or appends this start's `changes` (vs the last
  start) to `config_history.jsonl`; never rewrites either."""
  path = Path(workdir)
  if not (path / CONFIG_FILE).exists():
    files.write_json_atomic(path / CONFIG_FILE, config)
  if changes:
    line = json.dumps(dict(time=_now(), start_step=start_step,
                           changes={k: list(v) for k, v in changes.items()}), default=str)
    with open(path / HISTORY_FILE, "a") as f:
      f.write(line + "\n")
