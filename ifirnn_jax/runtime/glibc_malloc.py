"""A fixed mmap threshold for glibc malloc, so a long stream runs in constant memory.

glibc serves each block of at least M_MMAP_THRESHOLD bytes with a mapping of its own and
unmaps it when it is freed. By default the threshold moves: freeing such a block raises
the threshold to that block's size (up to 32 MiB). Once XLA:CPU has freed its first
frame-sized buffers, later ones come from the heap arenas instead, where freed space
stays resident and fragments, so a process deblurring a video grows over its first
hundred frames. Setting the threshold once turns that adjustment off: large blocks go
back to the kernel when freed, and the resident set follows what is alive.

The price is page faults: each large block is faulted in afresh at every use
(docs/benchmarks.md, "Memory of deblur over video length", has the figures). Only the
deblur command sets it; training keeps glibc's default (`ifirnn_jax.runtime.huge_pages` covers
its buffers).
"""

from __future__ import annotations

import ctypes

from ifirnn_jax.runtime import huge_pages

M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
# Blocks this large or larger get their own mapping (glibc's starting value is 128 KiB).
MMAP_THRESHOLD_BYTES = 1 << 20


def fix_mmap_threshold(threshold_bytes: int = MMAP_THRESHOLD_BYTES) -> bool:
  """Sets glibc's M_MMAP_THRESHOLD for this process (and stops its adjustment).

  Returns:
    True if set; False off glibc or when mallopt refuses the value.
  """
  if huge_pages.glibc_version() is None:
    return False
  try:
    libc = ctypes.CDLL(None)  # the symbols of this process, glibc's mallopt among them
    mallopt = libc.mallopt
  except (OSError, AttributeError):
    return False
  mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
  mallopt.restype = ctypes.c_int
  return mallopt(M_MMAP_THRESHOLD, threshold_bytes) == 1
