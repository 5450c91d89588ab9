"""`python -m ifirnn_jax.benchmark`: restart with 2 MiB pages, then the command line (cli.py)."""

import sys

from ifirnn_jax import huge_pages
from ifirnn_jax.benchmark import cli

if __name__ == "__main__":
  huge_pages.restart_with_huge_pages()  # re-executes once (huge_pages.py)
  sys.exit(cli.main())


