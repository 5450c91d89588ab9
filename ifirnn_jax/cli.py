"""Set-up shared by the command-line tools: processes, logging, common flags (no model or
data logic here)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import textwrap
from typing import Sequence

import jax

from ifirnn_jax.model.layers import CONV_IMPLS


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


class _DropLibraryInfo(logging.Filter):
  """Drops INFO and DEBUG records logged from inside `packages` (their WARNINGs stay)."""

  def __init__(self, packages: tuple[str, ...]):
    super().__init__()
    self.markers = tuple(os.sep + os.sep.join(p.split("/")) + os.sep for p in packages)

  def filter(self, record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or not any(
        m in record.pathname for m in self.markers)


def quiet_library_logs(packages: tuple[str, ...] = ("orbax", "jax/_src")) -> None:
  """Keeps library INFO lines off the console, so the progress and metric lines stay
  readable: Orbax's per-checkpoint lines (dozens per save) and JAX's start-up line
  "Unable to initialize backend 'tpu'" (it reads like an error on every CPU or GPU
  machine). Warnings and errors still show. `packages`: folders as "a/b"."""
  for handler in logging.getLogger().handlers + logging.getLogger("absl").handlers:
    handler.addFilter(_DropLibraryInfo(packages))


def add_conv_impl_flag(parser: argparse.ArgumentParser) -> None:
  """--conv-impl for the inference commands (IFIRNN.conv_impl, see model/layers.py)."""
  parser.add_argument("--conv-impl", choices=CONV_IMPLS, default="auto",
                      help="3x3 convolution algorithm: 'auto' = Winograd on CPU where it "
                           "pays, XLA's convolution (cuDNN) on GPU; 'xla'; 'winograd'")


# absl's help flags, and argparse's -h (absl itself would call -h an unknown flag).
HELP_ARGS = ("-h", "--help", "-?", "--helpshort", "--helpfull")


def wants_help(argv: Sequence[str]) -> bool:
  """Whether a command line (argv[0]: the program) asks for help before any '--'."""
  args = list(argv[1:])
  args = args[:args.index("--")] if "--" in args else args
  return any(a in HELP_ARGS for a in args)


def absl_help(doc: str) -> str:
  """An absl command's --help: `doc`, then each flag the main module defines, with its
  help and its default where it has one (absl's own --help exits 1 and prints
  "(default: 'None')" for a flag without one)."""
  from absl import flags
  lines = [doc.rstrip(), "", "flags:"]
  for flag in flags.FLAGS.get_flags_for_module(sys.argv[0]):
    default = "" if flag.default is None else f" (default: {flag.default_as_str})"
    lines.append(f"  --{flag.name}")
    lines += textwrap.wrap(flag.help + default, width=88, initial_indent=" " * 6,
                           subsequent_indent=" " * 6)
  return "\n".join(lines + ["  -h, --help", "      show this help and exit"])
