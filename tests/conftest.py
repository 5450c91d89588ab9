"""Test-wide settings.

The tests compare our layers and models with float32 references (PyTorch on the CPU,
numpy, hand-computed cases). XLA:CPU always computes float32 in full precision, but on
NVIDIA GPUs JAX's default precision runs float32 convolutions and matmuls as TF32
(10-bit mantissa): on an H200 the model's residual then differed from the CPU reference
by 0.9% (relative L2) with the tests' random weights, against the 1e-5 the tests ask.
So the tests ask for full float32 everywhere; on the CPU this changes nothing.
"""

import jax

jax.config.update("jax_default_matmul_precision", "highest")
