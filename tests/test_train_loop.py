"""The training loop runs ahead of the devices: no device value read between log steps,
at most two steps queued, batches prefetched in order, the input noise on the device."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax._src import array as jax_array

import data_trees
from ifirnn_jax import train
from ifirnn_jax.training import device_input, input_noise

ROOT = Path(__file__).resolve().parents[1]


def _tiny_config(root: Path, **overrides):
  spec = importlib.util.spec_from_file_location("demo_config", ROOT / "configs" / "demo.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config("tiny")
  config.data.update(root=str(root), make_default_if_missing=False, loader="numpy")
  config.update(cpu_devices=1, final_eval=False, **overrides)
  return config


def test_the_loop_reads_the_devices_only_at_log_eval_and_checkpoint_steps(
    tmp_path, monkeypatch):
  root = data_trees.gopro_tree(tmp_path / "gopro")
  config = _tiny_config(root, num_train_steps=8, log_every_steps=4, eval_every_steps=8,
                        checkpoint_every_steps=8)
  dispatched = [0]        # steps dispatched so far
  reads: list[int] = []   # for each device-to-host conversion: steps dispatched then
  waits: list[tuple[int, int]] = []  # (steps dispatched, the step whose loss it waited for)
  losses: dict[int, jax.Array] = {}

  make_train_step = train.make_train_step

  def counting_make_train_step(*args, **kwargs):
    step = make_train_step(*args, **kwargs)

    def fn(*fn_args):
      dispatched[0] += 1
      state, metrics = step.fn(*fn_args)
      losses[id(metrics["loss"])] = dispatched[0]
      return state, metrics
    return step._replace(fn=fn)

  value = jax_array.ArrayImpl._value  # every float(), int(), np.asarray, device_get

  def counted_value(self):
    reads.append(dispatched[0])
    return value.fget(self)

  block_until_ready = jax.block_until_ready

  def waiting(x):
    waits.append((dispatched[0], losses.get(id(x))))
    return block_until_ready(x)

  monkeypatch.setattr(train, "make_train_step", counting_make_train_step)
  monkeypatch.setattr(jax_array.ArrayImpl, "_value", property(counted_value))
  monkeypatch.setattr(jax, "block_until_ready", waiting)
  train.train_and_evaluate(config, str(tmp_path / "w"))
  monkeypatch.undo()

  assert dispatched[0] == 8
  loop_reads = [r for r in reads if r > 0]
  # Reads only after log steps (4, 8), validation and checkpoint (8); none in between.
  assert loop_reads and set(loop_reads) <= {4, 8}, sorted(set(loop_reads))
  # After dispatching step k the loop waits for step k - 2, without a transfer.
  loop_waits = [w for w in waits if w[1] is not None]
  assert [k for k, _ in loop_waits] == list(range(3, 9))
  assert all(waited == k - 2 for k, waited in loop_waits)


def test_prefetch_keeps_the_order_and_at_most_size_batches_ahead():
  pulled = []

  def batches():
    for k in itertools.count():
      pulled.append(k)
      yield {"blur": np.full((2, 3), k, np.float32)}

  sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  prefetched = device_input.prefetch_to_device(batches(), sharding, size=2)
  for k in range(5):
    batch = next(prefetched)
    assert isinstance(batch["blur"], jax.Array)
    np.testing.assert_array_equal(np.asarray(batch["blur"]), np.full((2, 3), k))
    assert len(pulled) == k + 2  # this batch and the next one: no more


def test_device_noise_is_a_pure_function_of_the_clip_keys_and_sigma():
  blur = jnp.zeros((3, 2, 8, 8, 3))
  keys = np.array([[1, 2, 3, 4], [5, 6, 7, 8], [1, 2, 3, 4]], np.uint32)
  sigma = np.array([2.0, 0.0, 1.0], np.float32)
  noisy = np.asarray(input_noise.add_noise(
      {"blur": blur, "noise_key": keys, "noise_sigma": sigma})["blur"])
  assert np.all(noisy[1] == 0)                            # sigma 0: no noise
  np.testing.assert_allclose(noisy[0] / 2, noisy[2], rtol=1e-6)  # same key, sigma scales
  # Clip by clip: the clip's noise alone equals its noise in the batch (any batch split).
  alone = np.asarray(input_noise.add_noise(
      {"blur": blur[:1], "noise_key": keys[:1], "noise_sigma": sigma[:1]})["blur"])
  np.testing.assert_array_equal(alone[0], noisy[0])
  assert np.std(noisy[0] * 255) == pytest.approx(2.0, rel=0.15)
