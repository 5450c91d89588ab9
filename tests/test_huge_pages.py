"""The command-line tools' restart with glibc's transparent-huge-page tunable."""

import os
import platform
import subprocess
import sys
import textwrap

import pytest

from ifirnn_jax import huge_pages

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINUX_GLIBC = ("Linux", (2, 36), "madvise")


@pytest.mark.parametrize("environ, system, glibc, mode, expected", [
    ({}, *LINUX_GLIBC, True),
    ({}, "Linux", (2, 35), "always", True),
    ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, *LINUX_GLIBC, True),
    ({"IFIRNN_JAX_HUGE_PAGES": "0"}, *LINUX_GLIBC, False),
    ({"IFIRNN_JAX_HUGE_PAGES": "1"}, *LINUX_GLIBC, True),
    ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}, *LINUX_GLIBC, False),  # after the restart
    ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, *LINUX_GLIBC, False),  # the user's choice
    ({}, "Linux", (2, 34), "madvise", False),  # glibc without the tunable
    ({}, "Linux", None, "madvise", False),  # musl
    ({}, "Linux", (2, 36), "never", False),
    ({}, "Linux", (2, 36), None, False),
    ({}, "Darwin", None, None, False),
])
def test_should_restart(environ, system, glibc, mode, expected):
  assert huge_pages.should_restart(environ, system, glibc, mode) is expected


def test_with_tunable_keeps_the_other_tunables_and_variables():
  env = huge_pages.with_tunable({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2", "A": "b"})
  assert env == {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1",
                 "A": "b"}
  assert huge_pages.with_tunable({}) == {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}


@pytest.mark.parametrize("text, mode", [
    ("always [madvise] never\n", "madvise"),
    ("[always] madvise never\n", "always"),
    ("always madvise [never]\n", "never"),
    ("garbage\n", None),
])
def test_thp_mode_reads_the_bracketed_word(tmp_path, text, mode):
  path = tmp_path / "enabled"
  path.write_text(text)
  assert huge_pages.thp_mode(str(path)) == mode
  assert huge_pages.thp_mode(str(tmp_path / "missing")) is None


# Prints its pid, restarts, then reports the tunable and how much of a freshly touched
# 64 MiB malloc block the kernel backs with huge pages (AnonHugePages, whole process).
_CHILD = textwrap.dedent("""
    import ctypes, os
    from ifirnn_jax import huge_pages
    print("pid", os.getpid(), flush=True)
    huge_pages.restart_with_huge_pages()
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
    print("tunables", os.environ.get("GLIBC_TUNABLES"))
    print("huge_kb", huge_kb)
""")


def _this_machine_restarts():
  return huge_pages.should_restart({}, platform.system(), huge_pages.glibc_version(),
                                   huge_pages.thp_mode())


def _clean_env(**env_changes):
  """This process's environment without the tunable and the opt-out, plus env_changes."""
  env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES",
                                                          huge_pages.OPT_OUT)}
  env.update(env_changes)
  return env


def _run_child(**env_changes):
  env = _clean_env(**env_changes)
  result = subprocess.run([sys.executable, "-c", _CHILD], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=True)
  lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
  pids = [line for line in result.stdout.splitlines() if line.startswith("pid ")]
  return result, lines, pids


def test_restart_sets_the_tunable_once_in_the_same_process():
  supported = _this_machine_restarts()
  result, lines, pids = _run_child()
  if supported:  # this machine (Linux, glibc 2.36, THP madvise) takes this branch
    assert result.stderr.count("restarting with GLIBC_TUNABLES=glibc.malloc.hugetlb=1") == 1
    assert lines["tunables"] == "glibc.malloc.hugetlb=1"
    assert len(pids) == 2 and pids[0] == pids[1]  # os.execve keeps the process id
    assert int(lines["huge_kb"]) >= 32 * 1024  # most of the 64 MiB block is huge pages
  else:
    assert "restarting" not in result.stderr and lines["tunables"] == "None"
    assert len(pids) == 1


def test_opt_out_and_user_tunables_are_respected():
  result, lines, pids = _run_child(IFIRNN_JAX_HUGE_PAGES="0")
  assert "restarting" not in result.stderr and lines["tunables"] == "None" and len(pids) == 1
  result, lines, pids = _run_child(GLIBC_TUNABLES="glibc.malloc.hugetlb=0")
  assert "restarting" not in result.stderr and len(pids) == 1
  assert lines["tunables"] == "glibc.malloc.hugetlb=0"


@pytest.mark.parametrize("module", ["ifirnn_jax.train", "ifirnn_jax.evaluate",
                                    "ifirnn_jax.deblur", "ifirnn_jax.benchmark"])
def test_the_command_line_tools_restart(module):
  supported = _this_machine_restarts()
  result = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO, env=_clean_env(),
                          capture_output=True, text=True, timeout=300)
  # The restarted process still ran the command (absl's help names --workdir).
  assert ("--workdir" if module.endswith("train") else "usage:") in result.stdout + result.stderr
  assert result.stderr.count("ifirnn_jax: restarting with") == (1 if supported else 0)
