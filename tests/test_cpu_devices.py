"""Tests of ifirnn_jax.cpu_devices: the device count rule, and JAX's CPU devices as
requested in a fresh process (JAX fixes them when its backend starts)."""

import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from ifirnn_jax.runtime import cpu_devices

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("batch,cores,expected", [
    (4, 2, 2), (3, 2, 1), (6, 4, 3), (1, 8, 1), (8, 8, 8), (5, 1, 1), (12, 8, 6)])
def test_auto_count_is_the_most_devices_that_split_the_batch(batch, cores, expected):
  assert cpu_devices.auto_count(batch, cores) == expected


def test_resolve_keeps_a_given_count_and_rejects_negative_ones():
  assert cpu_devices.resolve(0, 4, cores=2) == 2
  assert cpu_devices.resolve(3, 4, cores=2) == 3  # as asked, even above the cores
  with pytest.raises(ValueError, match="cpu_devices must be >= 0"):
    cpu_devices.resolve(-1, 4)


def _fresh_python(code, xla_flags=None):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  if xla_flags:
    env["XLA_FLAGS"] = xla_flags
  result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout.split()


REQUEST = """
import jax
from ifirnn_jax.runtime import cpu_devices
{before}
applied = cpu_devices.request_cpu_devices(2)
devices = cpu_devices.training_devices(1)
options = cpu_devices.step_compiler_options(jax.devices())
print(applied, jax.device_count(), len(devices), options is not None)
"""


def test_two_devices_when_asked_before_jax_starts():
  assert _fresh_python(REQUEST.format(before="")) == ["True", "2", "1", "True"]


def test_nothing_changes_once_jax_has_started():
  before = "import jax.numpy as jnp; jnp.ones(1).block_until_ready()"
  assert _fresh_python(REQUEST.format(before=before)) == ["False", "1", "1", "False"]


def test_a_device_count_forced_in_xla_flags_wins_and_is_used_whole():
  flags = f"--{cpu_devices.FORCED_FLAG}=3"
  assert _fresh_python(REQUEST.format(before=""), flags) == ["False", "3", "3", "True"]


def test_one_device_keeps_xla_threads():
  assert cpu_devices.step_compiler_options(jax.devices()[:1]) is None
