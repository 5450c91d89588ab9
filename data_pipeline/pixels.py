"""Integer pixel levels as intensities in [0, 1]: the one definition, level / maximum.

uint8 (0..255) and uint16 (0..65535). Here, on the data side, because the data pipeline
must not import the model package; the model's `deblur` / `step` import it from here.
numpy only, so the model's import path gains nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# The integer image dtypes, and the level that means 1.0.
MAX_LEVELS = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}
UINT8_MAX = MAX_LEVELS[np.dtype(np.uint8)]


def is_levels(dtype: Any) -> bool:
  """Whether `dtype` is one of the integer image dtypes of `MAX_LEVELS`."""
  return np.dtype(dtype) in MAX_LEVELS


def to_unit_float(levels: Any) -> Any:
  """uint8 / uint16 levels -> float32 level / max (exact for every uint8 level).

  Keeps the array's kind: a numpy array stays on the host, a jax.Array on its device.
  KeyError for other dtypes (`is_levels` says which are taken).
  """
  return levels.astype(np.float32) / np.float32(MAX_LEVELS[np.dtype(levels.dtype)])
