"""Transparent huge pages for XLA:CPU's per-call buffers (Linux with glibc >= 2.35).

XLA:CPU allocates the temporaries of each call of a compiled function afresh, about
a hundred MiB per train step. glibc hands blocks that large back to the kernel when they
are freed, so with 4 KiB pages every step page-faults its buffers in again and spends a
large share of its CPU time in the kernel. With `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`
glibc asks the kernel for 2 MiB transparent huge pages instead (madvise), which cuts
the faults by orders of magnitude (docs/benchmarks.md has the fault counts and times).

glibc reads GLIBC_TUNABLES only when a process starts, so the command-line tools call
`restart_with_huge_pages()` first: it re-executes the same command once (same process
id, same arguments) with the tunable added. It does nothing when the tunable is already
set, when IFIRNN_JAX_HUGE_PAGES=0, off Linux/glibc, or when the kernel's transparent huge
pages are off. Library use (`import ifirnn_jax`, notebooks) is never restarted; set the
variable before starting Python to get the same effect there.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping

TUNABLE = "glibc.malloc.hugetlb=1"
OPT_OUT = "IFIRNN_JAX_HUGE_PAGES"  # "0" turns the restart off
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


def should_restart(environ: Mapping[str, str], system: str, glibc: tuple[int, int] | None,
                   mode: str | None) -> bool:
  """Whether a command started with `environ` should restart itself with TUNABLE."""
  if environ.get(OPT_OUT, "1") == "0":
    return False
  if "glibc.malloc.hugetlb" in environ.get("GLIBC_TUNABLES", ""):
    return False  # already set (by the restart, or by the user: theirs wins)
  return (system == "Linux" and glibc is not None and glibc >= MIN_GLIBC
          and mode in ("always", "madvise"))


def with_tunable(environ: Mapping[str, str]) -> dict[str, str]:
  """A copy of `environ` with TUNABLE appended to GLIBC_TUNABLES (colon-separated)."""
  env = dict(environ)
  existing = env.get("GLIBC_TUNABLES", "")
  env["GLIBC_TUNABLES"] = f"{existing}:{TUNABLE}" if existing else TUNABLE
  return env


def restart_with_huge_pages() -> None:
  """Re-executes this command with GLIBC_TUNABLES=glibc.malloc.hugetlb=1, when it helps.

  Call it first thing in a `__main__` block, never from library code: on success it does
  not return (os.execve replaces the process, keeping its id). Prints one line to stderr.
  """
  if not should_restart(os.environ, platform.system(), glibc_version(), thp_mode()):
    return
  argv = getattr(sys, "orig_argv", None)
  if not argv:
    return
  print(f"ifirnn_jax: restarting with GLIBC_TUNABLES={TUNABLE} (2 MiB pages for XLA:CPU's "
        f"buffers; {OPT_OUT}=0 skips this)", file=sys.stderr, flush=True)
  sys.stdout.flush()
  try:
    os.execve(sys.executable, argv, with_tunable(os.environ))
  except OSError as error:  # keep going without huge pages
    print(f"ifirnn_jax: restart failed ({error}); continuing without huge pages",
          file=sys.stderr, flush=True)
