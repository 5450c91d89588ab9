"""The README's name for the PyTorch reference network: `ifirnn_jax.model.torch_reference`.

    from ifirnn_jax import torch_reference as tr   # the same module (imports torch)
"""

import sys

from ifirnn_jax.model import torch_reference

sys.modules[__name__] = torch_reference
