"""The command-line set-up shared by the tools (ifirnn_jax/cli.py)."""

import logging
import os

from ifirnn_jax import cli


def _record(path_parts, level):
  return logging.LogRecord("x", level, os.sep + os.path.join(*path_parts), 1, "message",
                           None, None)


def test_library_info_lines_are_dropped_and_warnings_and_our_own_lines_kept():
  site = ("venv", "lib", "python3.11", "site-packages")
  keep = cli._DropLibraryInfo(("orbax", "jax/_src")).filter
  # JAX's "Unable to initialize backend 'tpu'" and Orbax's per-save lines: INFO, dropped.
  assert not keep(_record(site + ("jax", "_src", "xla_bridge.py"), logging.INFO))
  assert not keep(_record(site + ("orbax", "checkpoint", "manager.py"), logging.INFO))
  # Their warnings and errors stay.
  assert keep(_record(site + ("jax", "_src", "xla_bridge.py"), logging.WARNING))
  assert keep(_record(site + ("orbax", "checkpoint", "manager.py"), logging.ERROR))
  # Our own INFO lines stay, even from a clone inside a folder called jax.
  assert keep(_record(("home", "jax", "ifirnn-jax", "ifirnn_jax", "train.py"), logging.INFO))
  assert keep(_record(site + ("clu", "metric_writers", "logging_writer.py"), logging.INFO))


def test_quiet_library_logs_filters_the_root_and_absl_handlers():
  handler = logging.StreamHandler()
  logging.getLogger().addHandler(handler)
  try:
    cli.quiet_library_logs()
    assert any(isinstance(f, cli._DropLibraryInfo) for f in handler.filters)
    assert not handler.filter(_record(("x", "jax", "_src", "xla_bridge.py"), logging.INFO))
  finally:
    logging.getLogger().removeHandler(handler)
