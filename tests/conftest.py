"""Test-wide settings.

The tests compare our layers and models with float32 references (PyTorch on the CPU,
numpy, hand-computed cases). XLA:CPU always computes float32 in full precision, but on
NVIDIA GPUs JAX's default precision runs float32 convolutions and matmuls as TF32
(10-bit mantissa), far outside the 1e-5 (relative L2) the tests ask of the model's
residual against the CPU reference (docs/benchmarks.md has the measured difference).
So the tests ask for full float32 everywhere; on the CPU this changes nothing.
"""

import jax

jax.config.update("jax_default_matmul_precision", "highest")
