"""runtime.setup(stream_frames=True) (glibc_malloc.fix_mmap_threshold): a large block stays
mmapped after a larger one is freed.

Each case runs in a fresh Python process (a clean malloc state). It mallocs and frees a
16 MiB block, then mallocs 4 MiB, and reads whether glibc served that block with a
mapping of its own: bit 0x2 (IS_MMAPPED) of the size word just before the block.
glibc's moving threshold rises to 16 MiB on that free, so without the fix the 4 MiB
block comes from the heap.
"""

import subprocess
import sys
from pathlib import Path

from ifirnn_jax.runtime import huge_pages

REPO = Path(__file__).resolve().parents[1]

_PROBE = """
import ctypes, sys
from ifirnn_jax import runtime
if sys.argv[1] == "fixed":  # what the deblur command's setup does
  assert runtime.setup(stream_frames=True).mmap_threshold_fixed
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
big = libc.malloc(16 << 20)
libc.free(big)
block = libc.malloc(4 << 20)
print(ctypes.c_size_t.from_address(block - ctypes.sizeof(ctypes.c_size_t)).value & 2)
"""


def _is_mmapped_after_a_larger_free(mode: str) -> bool:
  env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}  # no MALLOC_* / GLIBC_TUNABLES
  result = subprocess.run([sys.executable, "-c", _PROBE, mode], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr
  return result.stdout.strip() == "2"


def test_fixed_threshold_keeps_large_blocks_mmapped():
  assert huge_pages.glibc_version() is not None, "these tests need glibc"
  assert not _is_mmapped_after_a_larger_free("default")  # glibc's moving threshold
  assert _is_mmapped_after_a_larger_free("fixed")

