"""Transparent huge pages for XLA:CPU's per-call buffers (Linux with glibc >= 2.35).

XLA:CPU allocates the temporaries of each call of a compiled function afresh, about
a hundred MiB per train step. glibc hands blocks that large back to the kernel when they
are freed, so with 4 KiB pages every step page-faults its buffers in again and spends a
large share of its CPU time in the kernel. With `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`
glibc asks the kernel for 2 MiB transparent huge pages instead (madvise), which cuts
the faults by orders of magnitude (docs/benchmarks.md has the fault counts and times).

glibc reads GLIBC_TUNABLES only when a process starts, so it belongs in the environment
that starts Python: the launch scripts (launch/*.sh) export it, and the README's CPU
notes say how to set it by hand. This module only reports whether it is set and whether
it would help (`status`).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from typing import NamedTuple

TUNABLE = "glibc.malloc.hugetlb=1"
THP_MODE_FILE = "/sys/kernel/mm/transparent_hugepage/enabled"
MIN_GLIBC = (2, 35)  # the first glibc with the glibc.malloc.hugetlb tunable


def thp_mode(path: str = THP_MODE_FILE) -> str | None:
  """The kernel's transparent-huge-page mode ('always', 'madvise', 'never'), or None."""
  try:
    with open(path, encoding="ascii") as file:
      text = file.read()
  except OSError:
    return None
  for word in text.split():
    if word.startswith("[") and word.endswith("]"):
      return word[1:-1]
  return None


def glibc_version() -> tuple[int, int] | None:
  """(major, minor) of the C library when it is glibc, else None."""
  name, version = platform.libc_ver()
  if name != "glibc":
    return None
  try:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)
  except ValueError:
    return None


class Status(NamedTuple):
  """requested: GLIBC_TUNABLES sets glibc.malloc.hugetlb (to any value: the user's choice);
  available: this system can give 2 MiB pages to malloc (Linux, glibc >= 2.35, the
  kernel's transparent huge pages in 'always' or 'madvise' mode)."""

  requested: bool
  available: bool

  @property
  def missing(self) -> bool:
    """Whether 2 MiB pages would help but the environment does not ask for them."""
    return self.available and not self.requested


def status(environ: Mapping[str, str] | None = None, system: str | None = None,
           glibc: tuple[int, int] | None | str = "detect", mode: str | None = "detect",
           ) -> Status:
  """Status of this process (or of the given environment, system, glibc and THP mode)."""
  environ = os.environ if environ is None else environ
  system = platform.system() if system is None else system
  glibc = glibc_version() if glibc == "detect" else glibc
  mode = thp_mode() if mode == "detect" else mode
  requested = "glibc.malloc.hugetlb" in environ.get("GLIBC_TUNABLES", "")
  available = (system == "Linux" and glibc is not None and glibc >= MIN_GLIBC
               and mode in ("always", "madvise"))
  return Status(requested, available)
