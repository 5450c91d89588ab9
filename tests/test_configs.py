"""Every experiment config: it loads, validates, names a model of the paper, and its tiny
variant (the one the tests and notebooks run) builds a network that actually computes.

A too-narrow tiny network can start with every ReLU of a layer dead; it then outputs the
input plus a constant whatever the hidden state and N, and a test that trains or sweeps
it checks nothing. The train run's own init key is used here.
"""

import importlib.util
from pathlib import Path

import jax
import numpy as np
import pytest

from ifirnn_jax import train
from ifirnn_jax.training import default_config
from ifirnn_jax.model import platforms

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.py"))
TABLE1 = {f"C{c}H{n}" for c in (1, 2) for n in range(1, 5)} | {"C1H4-reg", "C2H3-reg",
                                                              "C2H4-reg"}


def _load(path: Path, arg=None):
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def test_the_configs_cover_tables_1_and_2():
  names = {p.stem for p in CONFIGS}
  gopro = {_load(p).model.name for p in CONFIGS if p.stem.startswith("gopro_")}
  assert gopro == TABLE1
  assert len([n for n in names if n.startswith("dvd_")]) == 5
  assert {"demo", "bsd_c2h3_reg"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_and_its_tiny_variant_validate(path, tmp_path):
  for arg in (None, "tiny"):
    config = _load(path, arg)
    if not config.data.make_default_if_missing:
      config.data.root = str(tmp_path)  # the user's dataset folder
    default_config.validate(config, process_count=1)
    assert default_config.num_train_steps(config) >= 1
    assert default_config.lr_halve_every_steps(config) >= 1


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_tiny_network_depends_on_its_input_and_iterations(path):
  config = _load(path, "tiny")
  config.model.zero_init_output = False  # the demo's identity start is tested in test_train
  model = train.create_model(config)
  params = train.initial_params(config, model,
                                jax.random.fold_in(jax.random.key(config.seed), 2**31 - 1))
  video = np.random.default_rng(0).uniform(size=(3, 16, 24, 3)).astype(np.float32)
  out = np.asarray(model.deblur(params, video))
  residual = out - video
  assert residual.std() > 1e-3, "output = input + constant: a dead layer"
  if model.iterations > 1:
    fewer = np.asarray(model.deblur(params, video, iterations=model.iterations - 1))
    assert np.abs(out - fewer).max() > 1e-4, "the intra-frame iterations change nothing"


def _demo(**overrides):
  config = _load(Path(__file__).resolve().parents[1] / "configs" / "demo.py")
  with config.unlocked():
    for field, value in overrides.items():
      section, _, name = field.rpartition(".")
      (config.model if section == "model" else config)[name] = value
  return config


def _rolled(unroll) -> bool:
  return unroll is not True and unroll == 1  # True == 1 in Python


def _cpu_unroll(config, device_count: int, on_cpu: bool = True):
  """The frame scan's unroll the demo's model runs with, each device taking its share."""
  model = train.create_model(config)
  impl = platforms.conv_impls(model.conv_impl, model.compute_dtype)[0 if on_cpu else 1]
  side = config.crop_size // 4
  return platforms.frame_scan_unroll(model.scan_unroll, impl, on_cpu,
                                     config.batch_size // device_count, side, side,
                                     model.n3 + model.nh)


def test_scan_unroll_auto_rolls_on_cpu_only_where_the_loop_runs_winograd():
  # The demo: F_R's 3x3 convs at 4 clips x 24x24 x 48 channels = 144 Winograd tiles,
  # 72 per device on a 2-core machine (config.cpu_devices).
  assert _rolled(_cpu_unroll(_demo(), device_count=1))
  assert _rolled(_cpu_unroll(_demo(), device_count=2))
  # One clip of 64x64 crops: 16 tiles, the fewest that run as Winograd.
  assert _rolled(_cpu_unroll(_demo(batch_size=1, crop_size=64), device_count=1))
  # One clip of 32x32 crops: 4 tiles, XLA's convolution, whose rolled backward is slow.
  assert _cpu_unroll(_demo(batch_size=1, crop_size=32), device_count=1) is True
  # The tile count is per device: 4 clips of 48x48 on 4 devices is 9 tiles each.
  assert _rolled(_cpu_unroll(_demo(batch_size=4, crop_size=48), device_count=1))
  assert _cpu_unroll(_demo(batch_size=4, crop_size=48), device_count=4) is True
  # No Winograd: XLA's convolutions asked for, bfloat16, or fewer than 16 channels.
  for overrides in ({"model.conv_impl": "xla"}, {"model.compute_dtype": "bfloat16"},
                    {"model.n3": 8, "model.nh": 4}):
    assert _cpu_unroll(_demo(**overrides), device_count=1) is True, overrides
  assert _rolled(_cpu_unroll(_demo(), device_count=1, on_cpu=False))
  assert _cpu_unroll(_demo(**{"model.scan_unroll": 2}), device_count=1) == 2


def test_model_named_reads_cells_iterations_and_gate_from_the_name():
  model = default_config.model_named("C2H3-reg", n1=4, compute_dtype="bfloat16")
  assert (model.cells, model.iterations, model.gated) == (2, 3, True)
  assert model.n1 == 4 and model.compute_dtype == "bfloat16"
  assert not default_config.model_named("C1H1").gated
  with pytest.raises(default_config.ConfigError, match="config.model.name: unknown model"):
    default_config.model_named("C3H1")
