"""`python -m ifirnn_jax.benchmark`: the process-wide setup, then the command line (cli.py)."""

import sys

from ifirnn_jax import runtime
from ifirnn_jax.benchmark import cli

if __name__ == "__main__":
  runtime.setup()
  sys.exit(cli.main())


