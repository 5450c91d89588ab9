"""The core is a pure description: building a model starts no backend, conv_impl 'auto'
is chosen for the platform a computation is lowered for (jax.lax.platform_dependent),
and the commands answer --help without restarting. Every platform's program is checked
here on the CPU, without the hardware, through the named scopes of the CPU formulations
(layers.CPU_SCOPES) in `lowered.as_text(debug_info=True)`."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ifirnn_jax as ifr
from ifirnn_jax import train
from ifirnn_jax.model import layers
from tests.tiny_models import tiny_params

ROOT = Path(__file__).resolve().parents[1]
# F_R's 3x3 convs (12 + 4 channels at 16x16 for 64x64 frames: 16 tiles) run as Winograd
# on CPU; F_B's first and F_L's last 5x5 convs (RGB) as space-to-depth.
MODEL = ifr.IFIRNN(cells=1, iterations=2, n1=4, n2=4, n3=12, nh=4, num_resblocks=1)
VIDEO = np.random.default_rng(0).uniform(size=(2, 64, 64, 3)).astype(np.float32)


def _fresh_python(code: str) -> str:
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout


def test_building_a_model_starts_no_backend():
  """After import and building, JAX still takes a CPU device count (it would raise once
  its backend has started)."""
  out = _fresh_python("""
      import jax
      import ifirnn_jax as ifr
      model = ifr.IFIRNN(cells=2, iterations=3)
      jax.config.update("jax_num_cpu_devices", 2)
      print(jax.device_count("cpu"), model.name)
  """)
  assert out.split() == ["2", "C2H3"]


def _markers(text: str) -> list[bool]:
  return [scope in text for scope in layers.CPU_SCOPES]


def test_a_model_jitted_onto_the_cpu_runs_the_cpu_formulation():
  params = tiny_params(MODEL)
  args = jax.device_put((params, VIDEO), jax.devices("cpu")[0])
  compiled = jax.jit(MODEL.deblur).lower(*args).compile()
  assert _markers(compiled.as_text()) == [True, True]
  out = compiled(*args)
  assert out.shape == VIDEO.shape and out.devices() == {jax.devices("cpu")[0]}
  xla = ifr.IFIRNN(**dict(MODEL.description(), conv_impl="xla"))
  assert not any(_markers(jax.jit(xla.deblur).trace(*args).lower().as_text(debug_info=True)))


def _lowered_text(traced, platform: str) -> str:
  return traced.lower(lowering_platforms=(platform,)).as_text(debug_info=True)


@pytest.mark.parametrize("what", ["deblur", "train_step"])
def test_gpu_and_tpu_programs_hold_no_cpu_formulation(what):
  params = tiny_params(MODEL)
  if what == "deblur":
    traced = jax.jit(MODEL.deblur).trace(params, VIDEO)
  else:
    tx = optax.adam(1e-3)
    step = train.make_train_step(MODEL, tx, lambda step: 1e-3,
                                 train.data_mesh(jax.devices()[:1]),
                                 reg_lambda=0.0, reg_tau=0.0)
    batch = {"blur": VIDEO[None], "sharp": VIDEO[None]}
    traced = step.fn.trace(train.init_train_state(params, tx), batch, jax.random.key(0),
                           jnp.zeros((), jnp.int32))
  assert _markers(_lowered_text(traced, "cpu")) == [True, True]
  for platform in ("cuda", "tpu"):
    text = _lowered_text(traced, platform)
    assert "stablehlo.convolution" in text, platform  # XLA's convolutions instead
    assert not any(_markers(text)), platform
  # Asked for explicitly, Winograd runs on every platform.
  winograd = ifr.IFIRNN(**dict(MODEL.description(), conv_impl="winograd"))
  if what == "deblur":
    assert _markers(_lowered_text(jax.jit(winograd.deblur).trace(params, VIDEO), "cuda"))[0]


COMMANDS = ("ifirnn_jax.train", "ifirnn_jax.evaluate", "ifirnn_jax.deblur",
            "ifirnn_jax.export", "ifirnn_jax.benchmark", "data_pipeline.synthesize")


def test_every_command_answers_help_in_the_same_process():
  """Each command's `__main__` with --help, one after the other in one process: a command
  that re-executed itself would end the child before the next one (and its id changes
  nothing, so the count of answers is what tells)."""
  out = _fresh_python(f"""
      import contextlib, io, runpy, sys
      for module in {COMMANDS!r}:
        sys.argv = [module, "--help"]
        text = io.StringIO()
        try:
          with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
            runpy.run_module(module, run_name="__main__", alter_sys=True)
          code = 0
        except SystemExit as e:
          code = e.code or 0
        print(module, code, "--help" in text.getvalue(), "restarting" in text.getvalue())
  """)
  answers = [line.split() for line in out.splitlines()]
  assert answers == [[m, "0", "True", "False"] for m in COMMANDS]
