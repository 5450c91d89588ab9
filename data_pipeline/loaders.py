"""The choice of training input: tf.data (TensorFlow) or numpy (no TensorFlow).

Both yield the same batches (numpy_pipeline); 'auto' takes tf.data when TensorFlow
can be imported and numpy otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from data_pipeline.errors import DataError

LOADERS = ("auto", "tfdata", "numpy")


def tensorflow_available() -> bool:
  """Whether `import tensorflow` works (it imports TensorFlow when it does)."""
  try:
    import tensorflow  # noqa: F401
  except Exception:  # noqa: BLE001  An absent or broken install alike.
    return False
  return True


def resolve_loader(loader: str) -> str:
  """'tfdata' or 'numpy' for config.data.loader.

  Raises:
    ValueError: for a name not in LOADERS.
    DataError: for 'tfdata' where TensorFlow cannot be imported.
  """
  if loader not in LOADERS:
    raise ValueError(f"loader must be one of {LOADERS}, got {loader!r}")
  if loader == "auto":
    return "tfdata" if tensorflow_available() else "numpy"
  if loader == "tfdata" and not tensorflow_available():
    raise DataError("config.data.loader='tfdata' needs TensorFlow, which cannot be "
                    "imported: pip install -e \".[tfdata]\", or use "
                    "--config.data.loader=numpy (the same batches)")
  return loader


def make_train_iterator(loader: str, sequences, **kwargs: Any
                        ) -> Iterator[dict[str, np.ndarray]]:
  """The training batches of `loader` ('tfdata' or 'numpy'; resolve 'auto' first)."""
  if loader == "tfdata":
    from data_pipeline import input_pipeline
    return input_pipeline.make_train_iterator(sequences, **kwargs)
  from data_pipeline import numpy_pipeline
  return numpy_pipeline.make_train_iterator(sequences, **kwargs)
