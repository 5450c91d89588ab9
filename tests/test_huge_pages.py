"""2 MiB pages for XLA:CPU's buffers: asked for by the environment (GLIBC_TUNABLES, which
the launch scripts export), reported by `huge_pages.status`; no command restarts itself."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ifirnn_jax.runtime import huge_pages

REPO = Path(__file__).resolve().parents[1]
LINUX_GLIBC = ("Linux", (2, 36), "madvise")


@pytest.mark.parametrize("environ, system, glibc, mode, requested, available", [
    ({}, *LINUX_GLIBC, False, True),
    ({}, "Linux", (2, 35), "always", False, True),
    ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, *LINUX_GLIBC, False, True),
    ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"}, *LINUX_GLIBC,
     True, True),
    ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, *LINUX_GLIBC, True, True),  # the user's
    ({}, "Linux", (2, 34), "madvise", False, False),  # no hugetlb tunable before 2.35
    ({}, "Linux", None, "madvise", False, False),     # musl
    ({}, "Linux", (2, 36), "never", False, False),
    ({}, "Linux", (2, 36), None, False, False),       # no THP in this kernel
    ({}, "Darwin", None, None, False, False),
])
def test_status(environ, system, glibc, mode, requested, available):
  status = huge_pages.status(environ, system, glibc, mode)
  assert (status.requested, status.available) == (requested, available)
  assert status.missing == (available and not requested)


@pytest.mark.parametrize("text, mode", [
    ("always [madvise] never\n", "madvise"),
    ("[always] madvise never\n", "always"),
    ("always madvise [never]\n", "never"),
])
def test_thp_mode_reads_the_bracketed_word(tmp_path, text, mode):
  path = tmp_path / "enabled"
  path.write_text(text)
  assert huge_pages.thp_mode(str(path)) == mode
  assert huge_pages.thp_mode(str(tmp_path / "missing")) is None


# How much of a freshly touched 64 MiB malloc block the kernel backs with huge pages
# (AnonHugePages, whole process), and this process's id.
_CHILD = textwrap.dedent("""
    import ctypes, os
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    size = 64 << 20
    ctypes.memset(libc.malloc(size), 1, size)
    huge_kb = 0
    if os.path.exists("/proc/self/smaps_rollup"):
      for line in open("/proc/self/smaps_rollup"):
        if line.startswith("AnonHugePages:"):
          huge_kb = int(line.split()[1])
    print(huge_kb)
""")


def _huge_kb(tunables):
  env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
  if tunables:
    env["GLIBC_TUNABLES"] = tunables
  result = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True,
                          text=True, timeout=60, check=True)
  return int(result.stdout)


def test_the_tunable_in_the_environment_gives_malloc_huge_pages():
  """What the launch scripts rely on: glibc reads the tunable at process start."""
  if not huge_pages.status({}).available:
    pytest.fail("this test needs Linux, glibc >= 2.35 and THP in madvise or always mode")
  assert _huge_kb(huge_pages.TUNABLE) >= 32 * 1024  # most of the 64 MiB block
  if huge_pages.thp_mode() == "madvise":  # without the tunable glibc does not madvise
    assert _huge_kb(None) < 32 * 1024


@pytest.mark.parametrize("script", sorted((REPO / "launch").glob("*.sh")), ids=lambda p: p.name)
def test_launch_scripts_export_the_tunable(script):
  lines = [line.strip() for line in script.read_text().splitlines()]
  assert any("export GLIBC_TUNABLES=" in line and line.endswith(huge_pages.TUNABLE + "\" ;;")
             for line in lines), script.name
