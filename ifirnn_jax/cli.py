"""Process set-up shared by the command-line tools (no model or data logic here)."""

from __future__ import annotations

import os

import jax


def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None,
                           process_id: int | None = None) -> None:
  """Joins a multi-process run: explicit flags, or auto-detected under SLURM.

  On CPU, cross-process collectives go through gloo. A single process needs nothing.
  """
  explicit = coordinator_address is not None
  under_slurm = "SLURM_NTASKS" in os.environ and int(os.environ["SLURM_NTASKS"]) > 1
  if not explicit and not under_slurm:
    return
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  if explicit:
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id)
  else:
    jax.distributed.initialize()  # reads SLURM's environment
