"""`python -m ifirnn_jax.benchmark`: restart with 2 MiB pages, then the command line (cli.py)."""

import sys

from ifirnn_jax import cpu_policy
from ifirnn_jax.benchmark import cli

if __name__ == "__main__":
  cpu_policy.start_command()  # may re-execute this process once (cpu_policy.py)
  sys.exit(cli.main())


